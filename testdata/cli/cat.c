// Copies stdin to stdout: the program's stdin must be the user's, in every executor mode.
#include <stdio.h>

int main(void) {
    int c;
    while ((c = getchar()) != EOF)
        putchar(c);
    return 0;
}
