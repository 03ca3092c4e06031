// Constructors and destructors with priorities: they run around main in priority order
// (constructors ascending, destructors descending), then atexit handlers before destructors.
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor(200))) static void ctor_200(void) { puts("ctor 200"); }
__attribute__((constructor(101))) static void ctor_101(void) { puts("ctor 101"); }
__attribute__((constructor)) static void ctor_default(void) { puts("ctor default"); }
__attribute__((constructor(150))) static void ctor_150(void) { puts("ctor 150"); }

__attribute__((destructor(200))) static void dtor_200(void) { puts("dtor 200"); }
__attribute__((destructor(101))) static void dtor_101(void) { puts("dtor 101"); }
__attribute__((destructor)) static void dtor_default(void) { puts("dtor default"); }

static void at_exit_first(void) { puts("atexit registered first"); }
static void at_exit_second(void) { puts("atexit registered second"); }

int main(void) {
    puts("main");
    atexit(at_exit_first);
    atexit(at_exit_second);
    return 0;
}
