//# shared-library: lib/plugin.c
//# native-ldflags: -rdynamic
//# rjitlink-flags: --export-dynamic
// A plugin loaded with dlopen calls back into the program and changes its data: the program's
// globals must be visible to libraries it loads (cc -rdynamic, rjitlink --export-dynamic).
#include <dlfcn.h>
#include <stdio.h>

int program_counter = 5;
int program_callback(int x) { return 2 * x + program_counter; }

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *plugin = dlopen(argv[1], RTLD_NOW);
    if (!plugin) {
        printf("dlopen failed\n");
        return 1;
    }
    int (*entry)(int) = (int (*)(int))dlsym(plugin, "plugin_entry");
    printf("plugin_entry(10) = %d\n", entry(10));
    printf("program_counter = %d\n", program_counter);
    return 0;
}
