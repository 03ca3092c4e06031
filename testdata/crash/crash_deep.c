// The middle frame of crash.c's `deep` crash.
int second(int *pointer);

__attribute__((noinline)) int first(int *pointer) {
    return second(pointer) * 3; // CALL(first)
}
