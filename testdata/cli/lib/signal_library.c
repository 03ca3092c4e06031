// A library whose constructor sets signals up, as natively it does before main: a handler for
// SIGUSR1, SIGUSR2 ignored, SIGALRM blocked. The program keeps all three under rjitlink too
// (see the native behaviour trials).
#include <signal.h>

static void handler(int signal) { (void)signal; }

__attribute__((constructor)) static void set_signals_up(void) {
    signal(SIGUSR1, handler);
    signal(SIGUSR2, SIG_IGN);
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alarm, 0);
}
