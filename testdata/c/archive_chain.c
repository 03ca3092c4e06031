//# archive: lib/chain_first.c lib/chain_second.c lib/chain_third.c lib/chain_unused.c
// A static archive whose members depend on each other transitively (first → second → third):
// each is loaded because a loaded object needs it. chain_unused.c defines a symbol that
// clashes with this file and must therefore never be loaded.
#include <stdio.h>

int chain_first(int);
extern int chain_weakly_wanted(void) __attribute__((weak));
int clashes_if_loaded = 7;

int main(void) {
    printf("chain result %d\n", chain_first(3));
    printf("weak reference alone loads nothing: %s\n", chain_weakly_wanted ? "loaded" : "not loaded");
    return clashes_if_loaded;
}
