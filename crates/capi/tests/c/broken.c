/* A unit of tests/c/embed.c that cannot link: nothing defines nowhere_defined. */
extern int nowhere_defined(void);

int broken(void) { return nowhere_defined(); }
