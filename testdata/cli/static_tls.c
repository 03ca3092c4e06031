// Linked against lib/static_tls_library.c: runs only in a process with a larger static TLS
// surplus. Shows the environment it sees, copies a line of stdin, and exits with 7.
#include <stdio.h>
#include <stdlib.h>

int static_tls_touch(int i);

static void show(const char *name) {
    const char *value = getenv(name);
    if (value)
        printf("%s: [%s]\n", name, value);
    else
        printf("%s: unset\n", name);
}

int main(void) {
    char line[64];
    show("GLIBC_TUNABLES");
    show("RJITLINK_USER_GLIBC_TUNABLES");
    if (fgets(line, sizeof line, stdin))
        printf("stdin: %s", line);
    printf("touched: %d\n", static_tls_touch(3));
    return 7;
}
