// A program started with stdin, stdout and stderr open gets descriptor 3 from its first open,
// and 4 from the next: an executor's own descriptors (its connection, its memory files) are
// out of the way.
#include <fcntl.h>
#include <stdio.h>

int main(void) {
    int first = open("/dev/null", O_RDONLY);
    int second = open("/dev/null", O_RDONLY);
    printf("first open gives %d, the next %d\n", first, second);
    return 0;
}
