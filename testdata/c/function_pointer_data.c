// Function pointers stored in initialized (and const, i.e. .data.rel.ro) data, including
// pointers to libc functions.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int);
};

static int twice(int x) { return 2 * x; }
static int square(int x) { return x * x; }
static int negate(int x) { return -x; }

static const struct command commands[] = {
    {"twice", twice},
    {"square", square},
    {"negate", negate},
    {"abs", abs},
};

size_t (*length_of)(const char *) = strlen;
int (*writer)(const char *) = puts;

int main(void) {
    int value = 7;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        value = commands[i].run(value);
        printf("%s -> %d\n", commands[i].name, value);
    }
    writer("written through a pointer to puts");
    return (int)length_of("twelve chars");
}
