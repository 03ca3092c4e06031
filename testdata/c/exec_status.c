// A program that execs another: that program's output and exit status (3) are the run's.
// Output written before the exec must be flushed first, as natively.
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("before exec\n");
    fflush(stdout);
    execl("/bin/sh", "sh", "-c", "echo from sh; exit 3", (char *)0);
    perror("execl");
    return 1;
}
