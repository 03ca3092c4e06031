//# libs: -ldl
//# rjitlink-flags: --export-dynamic
//# native-ldflags: -rdynamic
// An exported IFUNC, looked up with dlsym: the loader must hand out the function the resolver
// picked, not call it as a resolver.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

static int add_plain(int a, int b) { return a + b; }
static int (*resolve_add(void))(int, int) { return add_plain; }
int add(int, int) __attribute__((ifunc("resolve_add")));

int main(void) {
  int (*found)(int, int) = (int (*)(int, int))dlsym(RTLD_DEFAULT, "add");
  if (!found) {
    printf("not exported\n");
    return 1;
  }
  printf("via dlsym %d, directly %d\n", found(2, 3), add(4, 5));
  return 0;
}
