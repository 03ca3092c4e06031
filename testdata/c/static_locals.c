// Function-local statics in .data and .bss keep their values across calls.
#include <stdio.h>

static int counter(void) {
    static int calls;
    return ++calls;
}

static const char *rotate(void) {
    static const char *items[] = {"north", "east", "south", "west"};
    static int position = 2;
    position = (position + 1) % 4;
    return items[position];
}

int main(void) {
    for (int i = 0; i < 5; i++)
        printf("%d %s\n", counter(), rotate());
    return counter();
}
