//# args: x y
// Constructors receive (argc, argv, envp) from glibc; so they must from rjitlink.
#include <stdio.h>

static int seen_argc;
static const char *seen_last;

__attribute__((constructor)) static void capture(int argc, char **argv, char **envp) {
    seen_argc = argc;
    seen_last = argv[argc - 1];
    (void)envp;
}

int main(void) {
    printf("constructor saw argc=%d last=%s\n", seen_argc, seen_last);
    return 0;
}
