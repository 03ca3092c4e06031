// The program's exit(3) status becomes rjitlink's, and stdio buffers are flushed at exit.
#include <stdio.h>
#include <stdlib.h>

static void finish(int code) {
    printf("leaving with %d", code);  /* no newline: only exit()'s flush writes it */
    exit(code);
}

int main(void) {
    finish(37);
    return 1;
}
