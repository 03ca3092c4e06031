//# args: first second
// stdio and arguments: argv[0] is the first input, then the arguments after `--`.
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello, world: %d arguments\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    return 0;
}
