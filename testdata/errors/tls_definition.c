//# expect-error: section .tbss holds thread-local storage, which rjitlink does not support yet
// A thread-local definition is reported rather than silently given shared storage.
__thread int tls_counter;

int main(void) { return tls_counter; }
