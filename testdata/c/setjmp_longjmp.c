// Non-local jumps through libc's setjmp/longjmp.
#include <setjmp.h>
#include <stdio.h>

static jmp_buf recover;

static void deep(int level) {
    if (level == 5)
        longjmp(recover, level * 10);
    deep(level + 1);
}

int main(void) {
    int value = setjmp(recover);
    if (value == 0) {
        puts("descending");
        deep(0);
        puts("not reached");
    }
    printf("recovered with %d\n", value);
    return value / 10;
}
