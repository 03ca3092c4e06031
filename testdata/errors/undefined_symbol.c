//# expect-error: undefined symbol `missing_function` (referenced by
// A function no input and no library defines.
int missing_function(int);

int main(void) { return missing_function(1); }
