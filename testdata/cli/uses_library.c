// Calls a function of a shared library built from lib/greeting_library.c, which a test gives
// by its bare file name (libgreeting_library.so) in the current directory.
#include <stdio.h>
const char *library_greeting(void);
int main(void) {
    printf("%s\n", library_greeting());
    return 7;
}
