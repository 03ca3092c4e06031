// Mutual recursion and a recursive descent expression evaluator.
#include <stdio.h>

static const char *input;
static long expression(void);

static long number(void) {
    long value = 0;
    if (*input == '(') {
        input++;
        value = expression();
        input++;
        return value;
    }
    while (*input >= '0' && *input <= '9')
        value = value * 10 + (*input++ - '0');
    return value;
}

static long term(void) {
    long value = number();
    while (*input == '*' || *input == '/') {
        char op = *input++;
        long rhs = number();
        value = op == '*' ? value * rhs : value / rhs;
    }
    return value;
}

static long expression(void) {
    long value = term();
    while (*input == '+' || *input == '-') {
        char op = *input++;
        long rhs = term();
        value = op == '+' ? value + rhs : value - rhs;
    }
    return value;
}

static int is_even(unsigned n);
static int is_odd(unsigned n) { return n == 0 ? 0 : is_even(n - 1); }
static int is_even(unsigned n) { return n == 0 ? 1 : is_odd(n - 1); }

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
    const char *exprs[] = {"1+2*3", "(1+2)*3", "100/(2+3)-4*(5-2)", "2*(3+(4*(5+6)))"};
    for (int i = 0; i < 4; i++) {
        input = exprs[i];
        printf("%s = %ld\n", exprs[i], expression());
    }
    printf("is_even(1001) = %d, fib(25) = %ld\n", is_even(1001), fib(25));
    return 0;
}
