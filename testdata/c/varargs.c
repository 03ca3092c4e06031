// Variadic functions: va_list forwarding to vsnprintf, and summing a variable list.
#include <stdarg.h>
#include <stdio.h>

static long sum(int count, ...) {
    va_list args;
    va_start(args, count);
    long total = 0;
    for (int i = 0; i < count; i++)
        total += va_arg(args, long);
    va_end(args);
    return total;
}

static double average(int count, ...) {
    va_list args;
    va_start(args, count);
    double total = 0;
    for (int i = 0; i < count; i++)
        total += va_arg(args, double);
    va_end(args);
    return total / count;
}

static void log_line(const char *format, ...) {
    char buffer[128];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(buffer, sizeof buffer, format, args);
    va_end(args);
    printf("[%d] %s\n", length, buffer);
}

int main(void) {
    printf("%ld\n", sum(5, 1L, 2L, 3L, 4L, 5L));
    printf("%.3f\n", average(4, 1.5, 2.5, 3.25, 8.0));
    log_line("%s has %d items costing %.2f", "cart", 3, 19.99);
    log_line("%5d|%-5d|%05x", 42, 42, 255);
    return 0;
}
