// The signal state the program starts with: its signal mask, the action of every signal, and
// its alternate signal stack, all as its parent left them (the harness: nothing blocked, every
// action the default, no alternate stack), not as the Rust runtime sets them in rjitlink's
// process (SIGPIPE ignored, handlers for SIGSEGV and SIGBUS on an alternate stack).
// Crash reports (on by default) give the six crash signals rjitlink's handler and the program
// an alternate stack: turned off here, the state is the parent's exactly.
//# rjitlink-flags: --no-crash-report
#include <signal.h>
#include <stdio.h>

int main(void) {
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    printf("blocked:");
    for (int signal = 1; signal <= 64; signal++)
        if (sigismember(&mask, signal) == 1)
            printf(" %d", signal);
    printf("\n");
    for (int signal = 1; signal <= 64; signal++) {
        struct sigaction action;
        if (sigaction(signal, NULL, &action) != 0)
            continue;  // kept by the C library for itself
        if (action.sa_handler != SIG_DFL)
            printf("%d: %s\n", signal, action.sa_handler == SIG_IGN ? "ignored" : "handled");
    }
    struct {
        int signal;
        const char *name;
    } named[] = {{SIGPIPE, "SIGPIPE"}, {SIGINT, "SIGINT"}, {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"}};
    for (unsigned i = 0; i < sizeof named / sizeof named[0]; i++) {
        struct sigaction action;
        sigaction(named[i].signal, NULL, &action);
        printf("%s: %s\n", named[i].name, action.sa_handler == SIG_DFL ? "default" : "changed");
    }
    stack_t stack;
    sigaltstack(NULL, &stack);
    printf("alternate stack: %s\n", stack.ss_flags & SS_DISABLE ? "none" : "set");
    return 0;
}
