//# libs: -lstdc++
//# with: lib/statics_other.cc
// Static objects with constructors and destructors in two objects, function-local statics and
// atexit handlers: constructed and destroyed in the order a native link gives.
#include <cstdio>
#include <cstdlib>

struct Noisy {
  const char *name;
  explicit Noisy(const char *n) : name(n) { std::printf("construct %s\n", name); }
  ~Noisy() { std::printf("destroy %s\n", name); }
};

Noisy first("main first");
Noisy second("main second");

void use_other();

Noisy &local() {
  static Noisy in_function("function-local");
  return in_function;
}

int main() {
  std::atexit([] { std::printf("atexit before local\n"); });
  local();
  std::atexit([] { std::printf("atexit after local\n"); });
  use_other();
  std::printf("main returns\n");
  return 0;
}
