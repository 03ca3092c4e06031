// SIGPIPE is at its default in the program, and so in its children: a forked child writing
// to a pipe whose reader has gone is killed by SIGPIPE (not told EPIPE).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        for (;;)
            if (write(fds[1], "y\n", 2) < 0) {
                dprintf(STDOUT_FILENO, "write failed: %s\n", strerror(errno));
                _exit(2);
            }
    }
    close(fds[1]);
    char line[2];
    if (read(fds[0], line, sizeof line) != 2)
        return 1;
    close(fds[0]);
    int status;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("child killed by signal %d\n", WTERMSIG(status));
    else
        printf("child exited %d\n", WEXITSTATUS(status));
    return 0;
}
