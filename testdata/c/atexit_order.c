// atexit handlers run in reverse order of registration when main returns, and can register
// more handlers; stdout is flushed after them.
#include <stdio.h>
#include <stdlib.h>

static void third(void) { printf("third registered, runs first\n"); }
static void late(void) { printf("registered during exit\n"); }
static void second(void) { printf("second\n"); atexit(late); }
static void first(void) { printf("first registered, runs last"); }

int main(void) {
    atexit(first);
    atexit(second);
    atexit(third);
    printf("main returns 5\n");
    return 5;
}
