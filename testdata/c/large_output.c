// Several MiB on stdout, through stdio and with write(2) between: all of it arrives, in order.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    unsigned state = 12345;
    char block[4096];
    for (int round = 0; round < 64; round++) {
        for (int line = 0; line < 2000; line++) {
            state = state * 1103515245 + 12345;
            printf("%d.%d %08x\n", round, line, state);
        }
        fflush(stdout);
        memset(block, 'a' + round % 26, sizeof block - 1);
        block[sizeof block - 1] = '\n';
        for (int i = 0; i < 16; i++)
            if (write(STDOUT_FILENO, block, sizeof block) != (ssize_t)sizeof block)
                return 1;
    }
    return 0;
}
