// Unbounded recursion overflows the stack: natively the program dies by SIGSEGV, not by the
// Rust runtime's stack overflow report and abort (whose handler rjitlink's process has). Each
// frame is used after the call, so that no optimization turns the recursion into a loop.
#include <stdio.h>
#include <sys/resource.h>

__attribute__((noinline)) static int depth(volatile char *caller) {
    volatile char frame[256];
    frame[0] = caller[0] + 1;
    int below = depth(frame);
    return below + frame[0];
}

int main(void) {
    // No core file, wherever the test runs.
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    printf("recursing\n");
    fflush(stdout);
    volatile char start = 0;
    return depth(&start);
}
