#include <stdexcept>

inline int checked_divide(int a, int b) {
  if (b == 0) throw std::domain_error("divide by zero");
  return a / b;
}

int throw_from_other_object(int v) {
  if (v > 0) throw v * 10;
  return v;
}

int divide_in_other_object(int a, int b) { return checked_divide(a, b); }
