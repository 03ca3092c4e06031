// Defined in both objects that include it, in a COMDAT group: the link keeps one copy.
inline int twice(int x) {
    int doubled = 2 * x;
    return doubled; /* @twice-return */
}
int other(int x);
