// C++ linked without -lstdc++: its one library symbol is operator new (_Znwm).
int main() { return ::operator new(4) == nullptr; }
