// main's return value is the exit status.
#include <stdio.h>

int main(void) {
    puts("returning 42");
    return 42;
}
