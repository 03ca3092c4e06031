// Structs passed and returned by value, large ones through memory (memcpy calls).
#include <stdio.h>
#include <string.h>

struct big {
    char name[100];
    double values[16];
    int count;
};

static struct big make(const char *name, int count) {
    struct big b;
    memset(&b, 0, sizeof b);
    strncpy(b.name, name, sizeof b.name - 1);
    for (int i = 0; i < count && i < 16; i++)
        b.values[i] = i * 1.25;
    b.count = count;
    return b;
}

static double total(struct big b) {
    double t = 0;
    for (int i = 0; i < b.count; i++)
        t += b.values[i];
    return t;
}

struct pair { long a, b; };
static struct pair swap(struct pair p) { return (struct pair){p.b, p.a}; }

int main(void) {
    struct big b = make("measurements", 10);
    struct big copy = b;
    copy.values[0] = 100;
    printf("%s %.2f %.2f\n", b.name, total(b), total(copy));
    struct pair p = swap((struct pair){1, 2});
    printf("%ld %ld\n", p.a, p.b);
    return 0;
}
