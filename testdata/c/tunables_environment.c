// rjitlink starts executors (and in process, when it must, itself again) with a larger static
// TLS surplus in GLIBC_TUNABLES: the program must still see the user's GLIBC_TUNABLES, and not
// the variable that saves it.
#include <stdio.h>
#include <stdlib.h>

static void show(const char *name) {
    const char *value = getenv(name);
    if (value)
        printf("%s: [%s]\n", name, value);
    else
        printf("%s: unset\n", name);
}

int main(void) {
    show("GLIBC_TUNABLES");
    show("RJITLINK_USER_GLIBC_TUNABLES");
    return 0;
}
