// Prints its process id, then sleeps: the executor tests kill it mid-run.
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("%d\n", (int)getpid());
    fflush(stdout);
    sleep(60);
    return 0;
}
