/* The README's example: a program split over two objects, linked and run in memory. */
#include <stdio.h>

const char *greeting(void);

int main(int argc, char **argv) {
    printf("%s from %s, with %d argument(s)\n", greeting(), argv[0], argc - 1);
    return 0;
}
