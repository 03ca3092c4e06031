// The other declarations of common_symbols.c's commons; this one's array is larger.
int shared_counter;
int shared_array[8];
double shared_double;

void bump_from_other(void) {
    shared_counter *= 3;
    for (int i = 0; i < 8; i++)
        shared_array[i] = i * i;
    shared_double = 2.5;
}
