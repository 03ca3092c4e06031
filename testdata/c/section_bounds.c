//# with: lib/more_plugins.c
// Objects placed in a named section are found through the linker-defined __start_/__stop_
// symbols, as plugin registries do; sections of that name from two objects are kept together.
#include <stdio.h>

struct plugin {
    const char *name;
    int priority;
};

#define PLUGIN(id, prio) \
    __attribute__((used, section("plugins"))) static const struct plugin plugin_##id = {#id, prio}

PLUGIN(alpha, 3);
PLUGIN(beta, 1);
PLUGIN(gamma, 2);

extern const struct plugin __start_plugins[], __stop_plugins[];

int main(void) {
    int total = 0;
    for (const struct plugin *p = __start_plugins; p < __stop_plugins; p++) {
        printf("plugin %s priority %d\n", p->name, p->priority);
        total += p->priority;
    }
    return total;
}
