/* The first unit of tests/c/embed.c: a constructor, a destructor, main, and calls into the
 * host and a read of its data. */
extern int host_scale(int);
extern int host_offset(void);
extern int host_bias; /* host data: this unit is compiled with -fPIC */
extern int host_reenter(void); /* calls back into rjitlink while main runs */

int counter;

__attribute__((constructor)) static void set_up(void) { counter = 100; }
__attribute__((destructor)) static void tear_down(void) { counter = -1; }

int add(int a, int b) { return a + b + host_scale(a) + host_offset() + host_bias; }

int main(int argc, char **argv) {
    (void)argv;
    if (argc == 4) return host_reenter();
    return argc + counter;
}
