//# with: lib/common_other.c
//# cflags: -fcommon
// Tentative definitions compiled with -fcommon become SHN_COMMON symbols: merged across
// objects (largest size wins) and zero-filled.
#include <stdio.h>

int shared_counter;
int shared_array[4];
double shared_double;
void bump_from_other(void);

int main(void) {
    shared_counter += 5;
    bump_from_other();
    printf("counter %d\n", shared_counter);
    printf("array %d %d %d %d %d %d\n", shared_array[0], shared_array[1], shared_array[2],
           shared_array[3], shared_array[4], shared_array[7]);
    printf("double %.1f\n", shared_double);
    return 0;
}
