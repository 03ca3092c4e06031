// The program reads its stdin to the end (here its own source): line and byte counts, a
// checksum, the first line.
//# stdin: stdin_read.c
#include <stdio.h>

int main(void) {
    char first[256] = "";
    unsigned long lines = 0, bytes = 0, sum = 0;
    int c;
    while ((c = getchar()) != EOF) {
        if (lines == 0 && bytes < sizeof first - 1)
            first[bytes] = (char)c;
        bytes++;
        sum = sum * 31 + (unsigned char)c;
        if (c == '\n')
            lines++;
    }
    printf("%lu lines, %lu bytes, checksum %lx\nfirst line: %s", lines, bytes, sum, first);
    return ferror(stdin) ? 1 : 0;
}
