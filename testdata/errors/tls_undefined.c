//# expect-error: undefined symbol `missing_thread_local`
// A thread-local variable no object or library defines is an undefined symbol like any other,
// although the loader, not a lookup, is what finds library thread-locals.
extern __thread int missing_thread_local;

int main(void) { return missing_thread_local; }
