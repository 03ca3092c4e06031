// A second entry point, for --entry; as main it just returns 0.
#include <stdio.h>

int alternate_main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    puts("alternate_main");
    return 9;
}

int main(void) {
    puts("main");
    return 0;
}
