// Sorts with libc's qsort and a comparison function from an archive member.
#include <stdlib.h>

int compare_numbers(const void *a, const void *b);

void sort_numbers(int *numbers, int count) {
    qsort(numbers, count, sizeof numbers[0], compare_numbers); /* @sorter-qsort */
}
