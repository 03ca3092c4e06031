//# cflags: -O2 -DANSWER=42 -UNDEBUG -Itestdata/cli/include -std=gnu11 -pthread -fno-omit-frame-pointer -Wall
// Compiler options given to rjitlink reach the compiler of its sources: the macros -D defines
// and -O2 implies, a header found through -I, the standard -std names, -pthread's _REENTRANT.
#include <stdio.h>
#include "cli_header.h"

int main(void) {
#ifdef __OPTIMIZE__
    int optimized = 1;
#else
    int optimized = 0;
#endif
#ifdef _REENTRANT
    int reentrant = 1;
#else
    int reentrant = 0;
#endif
    printf("answer %d, optimized %d, reentrant %d, header %s, std %ld\n", ANSWER, optimized,
           reentrant, CLI_HEADER, (long)__STDC_VERSION__);
    return ANSWER - 40;
}
