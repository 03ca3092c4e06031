#include "comdat.h"

int other(int x) {
    return twice(x) + 1; /* @comdat-other-call */
}
