// main, in its own object: calls into sorter.c (which calls libc's qsort with a callback from
// an archive member) and numbers.c. With the argument `wait` it prints its pid and waits until
// a debugger sets `go`.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void sort_numbers(int *numbers, int count);
int square_sum(int n);
extern const char *greeting;
extern int calls;

volatile int go;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        while (!go)
            usleep(1000);
    }
    int numbers[] = {5, 3, 9, 1};
    sort_numbers(numbers, 4); /* @main-sort */
    int total = square_sum(4); /* @main-square-sum */
    printf("%s %d %d %d %d, %d after %d calls\n", greeting, numbers[0], numbers[1], numbers[2],
           numbers[3], total, calls);
    return 0;
}
