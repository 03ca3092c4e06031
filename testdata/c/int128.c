// 128-bit integer division and modulo call libgcc's __udivti3, __divti3, __umodti3, __modti3,
// which cc links by default.
#include <stdio.h>

static void print_u128(unsigned __int128 value) {
    char digits[40];
    int n = 0;
    do {
        digits[n++] = '0' + (int)(value % 10);
        value /= 10;
    } while (value);
    while (n)
        putchar(digits[--n]);
    putchar('\n');
}

int main(void) {
    volatile unsigned __int128 big = (unsigned __int128)0x0123456789abcdefULL << 64 | 0xfedcba9876543210ULL;
    volatile unsigned __int128 divisor = 1000000007;
    volatile __int128 negative = -(__int128)big / 3;
    print_u128(big);
    print_u128(big / divisor);
    print_u128(big % divisor);
    printf("%lld\n", (long long)(negative % 1000000));
    printf("%lld\n", (long long)(negative / ((__int128)1 << 70)));
    return 0;
}
