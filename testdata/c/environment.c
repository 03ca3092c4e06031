// The environment reaches main's envp and getenv.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv, char **envp) {
    (void)argc;
    (void)argv;
    int has_path = 0;
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            has_path = 1;
    printf("PATH in envp: %d\n", has_path);
    printf("PATH from getenv matches: %d\n", getenv("PATH") != NULL);
    setenv("RJITLINK_TEST", "set", 1);
    printf("after setenv: %s\n", getenv("RJITLINK_TEST"));
    return 0;
}
