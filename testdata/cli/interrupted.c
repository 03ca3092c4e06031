// Says "ready", then waits for SIGINT or SIGTERM, which it handles: it names the first one and
// exits 3. Under rjitlink, Ctrl-C and a signal sent to rjitlink must reach it as natively
// (see the native behaviour trials).
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t received;

static void handle(int signal) {
    if (!received)
        received = signal;
}

int main(void) {
    signal(SIGINT, handle);
    signal(SIGTERM, handle);
    printf("ready\n");
    fflush(stdout);
    while (!received)
        pause();
    printf("received %s\n", received == SIGINT ? "SIGINT" : "SIGTERM");
    return 3;
}
