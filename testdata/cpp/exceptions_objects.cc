//# libs: -lstdc++
//# with: lib/exceptions_thrower.cc
//# archive: lib/exceptions_member.cc
// Exceptions thrown in one object or archive member and caught in another; an inline function
// that throws is compiled into two objects, so one copy's unwind record belongs to a discarded
// COMDAT group. Also a static constructor that throws and catches while initializing.
#include <cstdio>
#include <stdexcept>

inline int checked_divide(int a, int b) {
  if (b == 0) throw std::domain_error("divide by zero");
  return a / b;
}

int throw_from_other_object(int);
int throw_from_archive_member(int);
int divide_in_other_object(int, int);

struct Initialized {
  int value = 0;
  Initialized() {
    try {
      value = checked_divide(1, 0);
    } catch (const std::domain_error &e) {
      value = -1;
      std::printf("static constructor caught: %s\n", e.what());
    }
  }
};
Initialized initialized;

int main() {
  std::printf("initialized %d\n", initialized.value);
  try {
    throw_from_other_object(5);
  } catch (int v) {
    std::printf("from another object: %d\n", v);
  }
  try {
    throw_from_archive_member(6);
  } catch (const std::runtime_error &e) {
    std::printf("from an archive member: %s\n", e.what());
  }
  try {
    std::printf("%d\n", checked_divide(8, 2));
    std::printf("%d\n", divide_in_other_object(9, 0));
  } catch (const std::domain_error &e) {
    std::printf("inline copy threw: %s\n", e.what());
  }
  return 0;
}
