// Large zero-filled arrays (.bss) alongside initialized data: zero on entry, writable.
#include <stdio.h>
#include <string.h>

static char big_buffer[8 << 20];
long zero_table[100000];
int initialized[4] = {4, 3, 2, 1};

int main(void) {
    long sum = 0;
    for (size_t i = 0; i < sizeof big_buffer; i += 4096)
        sum += big_buffer[i];
    for (size_t i = 0; i < 100000; i++)
        sum += zero_table[i];
    memset(big_buffer, 1, sizeof big_buffer);
    for (size_t i = 0; i < sizeof big_buffer; i += 4096)
        sum += big_buffer[i];
    printf("sum %ld initialized %d\n", sum, initialized[0] + initialized[3]);
    return 0;
}
