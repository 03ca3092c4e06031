// Loading this member would make a duplicate definition: nothing references it strongly.
int clashes_if_loaded = 1000;
int chain_weakly_wanted(void) { return clashes_if_loaded; }
