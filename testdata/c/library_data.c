//# args: -v -n 12 file.txt
// Library data read directly by the program: stdout/stderr, environ, and getopt's optind and
// optarg, which libc writes. In non-PIC code these are copy relocations: the program reads its
// own copy, and libc must be redirected to write that same copy.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    int verbose = 0, number = 0, option;
    while ((option = getopt(argc, argv, "vn:")) != -1) {
        if (option == 'v')
            verbose = 1;
        else if (option == 'n')
            number = atoi(optarg);
    }
    printf("verbose=%d number=%d optind=%d rest=%s\n", verbose, number, optind, argv[optind]);
    int count = 0;
    for (char **e = environ; *e; e++)
        count++;
    setenv("RJITLINK_LIBRARY_DATA", "1", 1);
    int after = 0;
    for (char **e = environ; *e; e++)
        after++;
    printf("setenv added %d variable(s) to environ\n", after - count);
    fprintf(stdout, "stdout is %s\n", stdout == stderr ? "stderr" : "distinct");
    fflush(stdout);
    return optind;
}
