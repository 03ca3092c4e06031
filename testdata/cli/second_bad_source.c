// Does not compile either (a second source with errors, for the order of the messages).
int second(void) { return another_undeclared_variable; }
