//# expect-error: in function 'main'); it is in libz: add -lz
// An undefined symbol of a well-known library: the message names the function that refers
// to it and the -l option that would define it.
#include <zlib.h>
int main(void) { return compressBound(10) == 0; }
