// A child the program forks inherits its exit handlers: the child's exit(5) is the child's
// status, which the parent sees, and the program's own status is the 0 main returns.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *who = "parent";

static void goodbye(void) { printf("exit handler of the %s\n", who); }

int main(void) {
    atexit(goodbye);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        who = "child";
        exit(5);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
