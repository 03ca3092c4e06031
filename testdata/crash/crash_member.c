// The innermost frame of crash.c's `deep` crash, in an archive member.
__attribute__((noinline)) int second(int *pointer) {
    return *pointer + 7; // CRASH(deep)
}
