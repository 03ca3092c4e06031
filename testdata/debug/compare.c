// An archive member: qsort's callback.
int compare_numbers(const void *a, const void *b) {
    int left = *(const int *)a; /* @compare-first */
    int right = *(const int *)b;
    return (left > right) - (left < right); /* @compare-return */
}
