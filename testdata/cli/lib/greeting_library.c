// A shared library for uses_library.c.
const char *library_greeting(void) { return "greetings from a shared library"; }
