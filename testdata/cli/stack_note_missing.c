//# archive: lib/no_stack_note.s
// A member of an archive without a .note.GNU-stack section (assembly that leaves it out): ld
// takes it to need an executable stack, warns naming the member, and makes the stack
// executable; so must rjitlink, which the program shows by its stack's permissions.
#include <stdio.h>
#include <string.h>

int no_stack_note_answer(void);

int main(void) {
  char line[512], perms[5] = "none";
  FILE *maps = fopen("/proc/self/maps", "r");
  while (maps && fgets(line, sizeof line, maps))
    if (strstr(line, "[stack]")) memcpy(perms, strchr(line, ' ') + 1, 4);
  printf("answer %d, stack %s\n", no_stack_note_answer(), perms);
  return 0;
}
