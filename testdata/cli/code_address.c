// Prints where its own code lies; the CLI tests check it against the slab's placement.
// (Not in testdata/c: its output differs from a native run by design.)
#include <stdio.h>

int main(void) {
    printf("%#lx\n", (unsigned long)&main);
    return 0;
}
