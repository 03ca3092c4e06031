/* The second object of the README's example. */
const char *greeting(void) { return "Hello, JIT-linked world"; }
