/* A program for tests/c/embed.c's --run and --spawn modes: its exit status says it ran with
 * its arguments and its constructor, once (a second run would add 40 again). */
static int base;

__attribute__((constructor)) static void set_up(void) { base += 40; }

int main(int argc, char **argv) {
    (void)argv;
    return base + argc;
}
