#include "comdat.h"
#include <cstdio>

int main() {
    int value = twice(20); /* @comdat-main-call */
    std::printf("%d %d\n", value, other(1));
    return 0;
}
