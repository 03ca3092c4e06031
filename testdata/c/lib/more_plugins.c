// More entries for section_bounds.c's plugin section, with other data around them.
struct plugin {
    const char *name;
    int priority;
};

const char *unrelated_data[] = {"not", "a", "plugin"};
__attribute__((used, section("plugins"))) static const struct plugin delta = {"delta", 10};
int unrelated_counter = 5;
