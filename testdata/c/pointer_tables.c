// Pointers in initialized data (R_X86_64_64 in .data / .data.rel.ro): tables of strings,
// pointers to globals, pointers into arrays, and structs holding pointers.
#include <stdio.h>

int numbers[] = {10, 20, 30, 40, 50};
int *middle = &numbers[2];
int **pointer_to_pointer = &middle;
const char *const names[] = {"alpha", "beta", "gamma", "delta"};
const char *mutable_names[] = {"one", "two", "three"};

struct entry {
    const char *key;
    int *value;
    const struct entry *next;
};
static const struct entry third = {"third", &numbers[4], 0};
static const struct entry second = {"second", &numbers[1], &third};
static const struct entry first = {"first", &numbers[0], &second};
static const struct entry *head = &first;

int main(void) {
    printf("%d %d %d\n", *middle, **pointer_to_pointer, middle[1]);
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        printf("%s ", names[i]);
    putchar('\n');
    mutable_names[1] = "TWO";
    for (unsigned i = 0; i < 3; i++)
        printf("%s ", mutable_names[i]);
    putchar('\n');
    for (const struct entry *e = head; e; e = e->next)
        printf("%s=%d\n", e->key, *e->value);
    return numbers[4] - 50;
}
