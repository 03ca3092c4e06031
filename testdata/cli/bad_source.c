// Does not compile: the compiler's own messages must reach the user as it printed them.
int main(void) {
    return undeclared_variable;
}
