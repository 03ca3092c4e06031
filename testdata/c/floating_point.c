// Floating-point constants from .rodata (RIP-relative loads) and printf's float formatting.
#include <stdio.h>

static const double coefficients[] = {1.0, -0.5, 0.041666666666666664, -0.001388888888888889};

static double cos_series(double x) {
    double x2 = x * x, power = 1, sum = 0;
    for (int i = 0; i < 4; i++) {
        sum += coefficients[i] * power;
        power *= x2;
    }
    return sum;
}

int main(void) {
    for (double x = 0; x < 1.6; x += 0.25)
        printf("cos(%.2f) ~ %.8f\n", x, cos_series(x));
    float f = 1.0f / 3.0f;
    printf("%.9g %e %a\n", f, 6.02214076e23, 0.1);
    long double ld = 1.0L / 7.0L;
    printf("%.15Lf\n", ld);
    return 0;
}
