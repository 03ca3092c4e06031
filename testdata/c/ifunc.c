// IFUNCs defined in the linked code: a global one, a static one, one called through a data
// pointer, and gcc's target_clones (an IFUNC choosing by CPU). The resolvers run before the
// constructors, as the dynamic loader runs IRELATIVE relocations before init functions.
#include <stdio.h>
#include <string.h>

static int add_plain(int a, int b) { return a + b; }
static int add_twice(int a, int b) { return 2 * (a + b); }

static int use_twice;
static int (*resolve_add(void))(int, int) { return use_twice ? add_twice : add_plain; }
int add(int, int) __attribute__((ifunc("resolve_add")));

static size_t longer_strlen(const char *s) { return strlen(s) + 100; }
static size_t (*resolve_len(void))(const char *) { return longer_strlen; }
static size_t local_len(const char *) __attribute__((ifunc("resolve_len")));

int (*add_pointer)(int, int) = add;

__attribute__((target_clones("avx2", "default"))) int cloned(int x) { return x * 3; }

__attribute__((constructor)) static void before_main(void) {
  use_twice = 1;  // too late: add was resolved already
  printf("in constructor add %d\n", add(1, 2));
}

int main(void) {
  printf("add %d\n", add(2, 3));
  printf("through pointer %d\n", add_pointer(4, 5));
  printf("local %zu\n", local_len("abc"));
  printf("cloned %d\n", cloned(7));
  return add(1, 1);
}
