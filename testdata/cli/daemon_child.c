// Forks a child that prints its pid, detaches from stdin, stdout and stderr and lives on (30
// seconds, unless killed); the program itself ends at once with _exit(2). Natively the run is
// over then: under rjitlink too, though the child holds everything the program had open (see
// the native behaviour trials).
#include <stdio.h>
#include <unistd.h>

int main(void) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("%d\n", (int)getpid());
        fflush(stdout);
        close(0);
        close(1);
        close(2);
        sleep(30);
        _exit(0);
    }
    _exit(2);
}
