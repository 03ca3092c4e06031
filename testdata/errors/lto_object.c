//# cflags: -flto
//# expect-error: compiled with -flto: it holds GCC's intermediate code, not machine code, and rjitlink does no link-time optimization
// GCC's LTO objects (without -ffat-lto-objects) hold no machine code: linked as they are,
// every function they define would be missing ("undefined symbol main").
int main(void) { return 0; }
