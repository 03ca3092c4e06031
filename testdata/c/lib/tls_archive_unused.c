// Never loaded: nothing refers to it, and it would clash with tls_archive.c.
__thread int clashes_if_loaded = 4;
__thread int unused_tls = 5;
