//# args: 3 9 14 0 27
// Dense switch statements compile to jump tables (relative offsets in .rodata).
#include <stdio.h>
#include <stdlib.h>

static const char *classify(int n) {
    switch (n) {
    case 0: return "zero";
    case 1: return "one";
    case 2: return "two";
    case 3: return "three";
    case 4: return "four";
    case 5: return "five";
    case 6: return "six";
    case 7: return "seven";
    case 8: return "eight";
    case 9: return "nine";
    case 10: return "ten";
    case 11: return "eleven";
    case 12: return "twelve";
    default: return "many";
    }
}

static int score(int n) {
    switch (n % 8) {
    case 0: n += 3; /* fall through */
    case 1: n *= 2; break;
    case 2: n -= 5; break;
    case 3: n ^= 0x55; break;
    case 4: n <<= 2; break;
    case 5: n = -n; break;
    case 6: n /= 3; break;
    default: n += 100;
    }
    return n;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = atoi(argv[i]);
        printf("%d: %s, score %d\n", n, classify(n), score(n));
        total += score(n);
    }
    for (int i = 0; i < 16; i++)
        total += score(i);
    printf("total %d\n", total);
    return total & 0x7f;
}
