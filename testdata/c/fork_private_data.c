// After fork, parent and child have private copies of the program's data: a child's writes
// to globals (.data and .bss) and to a heap block must not reach the parent.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int initialized_value = 1;
int zero_value;
static char buffer[1 << 16];

int main(void) {
    int *heap = malloc(sizeof *heap);
    *heap = 10;
    buffer[1000] = 'p';
    pid_t child = fork();
    if (child == 0) {
        initialized_value = 2;
        zero_value = 2;
        buffer[1000] = 'c';
        *heap = 20;
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WEXITSTATUS(status));
    printf("parent sees %d %d %c %d\n", initialized_value, zero_value, buffer[1000], *heap);
    free(heap);
    return 0;
}
