// Strong definitions that override weak_symbols.c's weak ones.
int configured_value = 99;
const char *backend_name(void) { return "strong override"; }
