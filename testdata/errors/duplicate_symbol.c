//# with: lib/duplicate_other.c
//# expect-error: duplicate symbol `duplicated_value`: defined in
// Two strong definitions of one name.
int duplicated_value = 1;

int main(void) { return duplicated_value; }
