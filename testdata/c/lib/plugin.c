// The plugin of export_dynamic.c, built as a shared library: it uses the program's symbols.
extern int program_counter;
int program_callback(int);

int plugin_entry(int x) {
    program_counter += 100;
    return program_callback(x) + 1;
}
