#!/usr/bin/env -S rjitlink run -lm
// A script: the test writes it into a directory with its first line naming the rjitlink
// under test, makes it executable and runs it directly. The line numbers the compiler sees
// are the file's (__LINE__ below is on line 9).
#include <math.h>
#include <stdio.h>

int main(int argc, char **argv) {
    printf("line %d, argc %d, sqrt %.3f\n", __LINE__, argc, sqrt((double)argc));
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    return argc;
}
