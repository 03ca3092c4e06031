// Built with -ffunction-sections -fdata-sections (a .text.* section per function) and -fcommon
// (`calls` is a common symbol). `greeting` points into a mergeable string section.
int calls;
const char *greeting = "sorted";

__attribute__((noinline)) int square(int x) {
    int result = x * x;
    calls++;
    return result; /* @square-return */
}

int square_sum(int n) {
    int total = 0; /* @square-sum-first */
    for (int i = 1; i <= n; i++)
        total += square(i);
    return total; /* @square-sum-return */
}
