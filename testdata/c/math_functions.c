//# libs: -lm
// libm through -lm (Debian's libm.so is a linker script naming libm.so.6).
#include <math.h>
#include <stdio.h>

int main(void) {
    volatile double x = 0.75;
    printf("sin %.6f cos %.6f tan %.6f\n", sin(x), cos(x), tan(x));
    printf("exp %.6f log %.6f pow %.6f\n", exp(x), log(x), pow(x, 3.5));
    printf("sqrt %.6f cbrt %.6f hypot %.6f\n", sqrt(2.0), cbrt(x * 8), hypot(3.0, x));
    printf("floor %.1f ceil %.1f fmod %.3f\n", floor(-x), ceil(x), fmod(10.0, x));
    return (int)round(atan2(1.0, x) * 10);
}
