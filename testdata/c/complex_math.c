// Complex division calls libgcc's __divsc3/__divdc3; float to 128-bit integer conversion calls
// __fixsfti/__fixdfti, and back __floattidf.
#include <complex.h>
#include <stdio.h>

int main(void) {
    volatile float complex a = 3.0f + 4.0f * I, b = 1.0f - 2.0f * I;
    float complex q = a / b;
    printf("float quotient %.4f %+.4fi\n", crealf(q), cimagf(q));
    volatile double complex c = 1.5 + 2.5 * I, d = -0.5 + 4.0 * I;
    double complex r = c / d;
    printf("double quotient %.6f %+.6fi\n", creal(r), cimag(r));
    volatile float f = 1.5e20f;
    __int128 big = (__int128)f;
    printf("%lld %lld\n", (long long)(big >> 64), (long long)(big & 0xffffffff));
    volatile double g = -2.5e25;
    __int128 other = (__int128)g;
    printf("%.6e\n", (double)other);
    return 0;
}
