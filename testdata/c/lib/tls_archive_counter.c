// An archive member with a per-thread counter, loaded for archive_next.
static __thread int calls = 10;

int archive_next(void) { return ++calls; }
