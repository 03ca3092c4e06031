// A signal sent to the process goes to a thread that does not block it. The program's only
// thread blocks SIGUSR1 and waits for it with sigwait: no other thread in the process (a
// linker's worker, in process) may take it instead, which would end the program by SIGUSR1's
// default action.
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    kill(getpid(), SIGUSR1);
    int received = 0;
    if (sigwait(&usr1, &received) != 0)
        return 1;
    printf("sigwait received %s\n", received == SIGUSR1 ? "SIGUSR1" : "another signal");
    return 0;
}
