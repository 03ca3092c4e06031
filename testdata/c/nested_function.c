// A GCC nested function whose address is taken: its trampoline is built on the stack at run
// time, so the object's .note.GNU-stack asks for an executable stack (ld grants it, warning).
#include <stdio.h>

static int apply(int (*f)(int), int x) { return f(x); }

int main(int argc, char **argv) {
  (void)argv;
  int base = argc * 10;
  int add_base(int v) { return v + base; }
  int values[] = {3, 1, 2};
  int total = 0;
  for (int i = 0; i < 3; i++) total += apply(add_base, values[i]);
  printf("total %d\n", total);
  return total % 7;
}
