// _exit(4) ends the program at once: no exit handlers, no fini functions, no stdio flush.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void handler(void) { printf("exit handler: must not run\n"); }

__attribute__((destructor)) static void destructor(void) { printf("destructor: must not run\n"); }

int main(void) {
    atexit(handler);
    printf("flushed\n");
    fflush(stdout);
    printf("still buffered: lost\n");
    _exit(4);
}
