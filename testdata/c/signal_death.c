// A program killed by a signal (SIGTERM, raised by itself): its output so far is kept, and
// the signal is how it ended.
#include <signal.h>
#include <stdio.h>

int main(void) {
    printf("raising SIGTERM\n");
    fflush(stdout);
    raise(SIGTERM);
    printf("still alive: must not happen\n");
    return 0;
}
