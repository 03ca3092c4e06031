// glibc's mmap threshold slides up as mapped blocks are freed: a block of up to 32 MiB freed
// after being mapped makes the next one of its size come from the heap. A program run in
// rjitlink's process must find the allocator so (rjitlink's tuning of its own malloc for a link
// would end the sliding for good, and is not made when a program runs there).
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

// glibc keeps a chunk's size before it, with bit 1 set for a chunk mapped on its own.
static int mapped(void *block) { return (((size_t *)block)[-1] & 2) != 0; }

int main(void) {
    static const size_t sizes[] = {200 << 10, 1 << 20, 4 << 20, 16 << 20};
    for (int i = 0; i < 4; i++) {
        // Mapped or not (an earlier free may have moved the threshold already), this frees it.
        // (Through a volatile pointer: a compiler may drop a malloc freed unused.)
        void *volatile first = malloc(sizes[i]);
        free(first);
        void *volatile again = malloc(sizes[i]);
        printf("%zu KiB again: %s\n", sizes[i] >> 10, mapped(again) ? "mapped" : "from the heap");
        free(again);
    }
    return 0;
}
