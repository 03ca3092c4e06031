// Writes lines to stdout forever: ended only by SIGPIPE once its reader has gone, like
// `yes | head -1` (see the executor tests).
#include <stdio.h>

int main(void) {
    for (;;)
        puts("y");
}
