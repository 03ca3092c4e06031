// Function pointers passed to libc (qsort, bsearch) and called back; a dispatch table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_ints(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
static int (*const operations[])(int, int) = {add, sub, mul};

int main(void) {
    int values[] = {42, -7, 19, 3, 100, 0, 55, -30};
    size_t n = sizeof values / sizeof values[0];
    qsort(values, n, sizeof values[0], compare_ints);
    for (size_t i = 0; i < n; i++)
        printf("%d ", values[i]);
    putchar('\n');
    int key = 19;
    int *found = bsearch(&key, values, n, sizeof values[0], compare_ints);
    printf("found 19 at index %td\n", found - values);

    const char *words[] = {"pear", "apple", "fig", "banana", "cherry"};
    qsort(words, 5, sizeof words[0], compare_strings);
    for (int i = 0; i < 5; i++)
        printf("%s\n", words[i]);
    for (int i = 0; i < 3; i++)
        printf("op%d(6, 7) = %d\n", i, operations[i](6, 7));
    return 0;
}
