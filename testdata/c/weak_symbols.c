//# with: lib/weak_strong.c
// Weak definitions lose to strong ones from other objects; an undefined weak symbol is 0.
#include <stdio.h>

__attribute__((weak)) int configured_value = 1;
__attribute__((weak)) const char *backend_name(void) { return "weak default"; }
__attribute__((weak)) int only_weak(void) { return 5; }
extern int never_defined(void) __attribute__((weak));
extern int never_defined_data __attribute__((weak));

int main(void) {
    printf("configured_value = %d\n", configured_value);
    printf("backend = %s\n", backend_name());
    printf("only_weak = %d\n", only_weak());
    printf("never_defined is %s\n", never_defined ? "present" : "null");
    printf("never_defined_data is %s\n", &never_defined_data ? "present" : "null");
    return 0;
}
