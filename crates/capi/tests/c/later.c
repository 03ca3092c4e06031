/* The second unit of tests/c/embed.c: resolves add against the first. */
extern int add(int, int);

int add_twice(int x) { return 2 * add(x, x); }
