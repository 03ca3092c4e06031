// Dies by SIGSEGV: rjitlink must report the signal as the executor's death.
#include <stdio.h>

int main(void) {
    puts("about to crash");
    fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
