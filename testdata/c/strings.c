// String literals (mergeable .rodata.str sections), string functions from libc.
#include <stdio.h>
#include <string.h>
#include <ctype.h>

static const char greeting[] = "Hello, JIT world";
const char *shared_literal(void) { return "shared literal"; }

int main(void) {
    char buffer[64];
    strcpy(buffer, greeting);
    for (char *p = buffer; *p; p++)
        *p = toupper((unsigned char)*p);
    printf("%s (%zu)\n", buffer, strlen(buffer));
    char list[] = "red,green,blue,,yellow";
    for (char *token = strtok(list, ","); token; token = strtok(NULL, ","))
        printf("token: %s\n", token);
    printf("%s %s\n", shared_literal(), strstr(greeting, "JIT"));
    printf("cmp %d\n", strcmp(shared_literal(), "shared literal") == 0);
    return (int)strlen(shared_literal());
}
