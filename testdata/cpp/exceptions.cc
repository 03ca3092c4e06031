//# libs: -lstdc++
// C++ exceptions thrown and caught inside JIT-linked code: by value, by base class, catch (...),
// rethrow, nested try, function-try-blocks, destructors run while unwinding, and a noexcept
// violation reaching a terminate handler.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

struct Tracer {
  const char *name;
  explicit Tracer(const char *n) : name(n) {}
  ~Tracer() { std::printf("  ~%s\n", name); }
};

struct Base : std::exception {
  const char *what() const noexcept override { return "base"; }
};
struct Derived : Base {
  int code;
  explicit Derived(int c) : code(c) {}
  const char *what() const noexcept override { return "derived"; }
};

__attribute__((noinline)) int depth(int n) {
  Tracer t("depth");
  if (n == 0) throw Derived(n + 7);
  return depth(n - 1) + 1;
}

int rethrows() {
  try {
    depth(3);
  } catch (Base &) {
    std::printf("  rethrowing\n");
    throw;
  }
  return 0;
}

struct Guarded {
  int value;
  explicit Guarded(int v) try : value(v > 0 ? v : throw std::invalid_argument("not positive")) {
  } catch (const std::invalid_argument &e) {
    std::printf("  function-try-block saw: %s\n", e.what());
  }
};

void no_throw_promised() noexcept { throw std::runtime_error("escaped"); }

[[noreturn]] void on_terminate() {
  std::printf("terminate handler\n");
  std::exit(7);
}

int main() {
  try {
    throw 42;
  } catch (int v) {
    std::printf("int %d\n", v);
  }
  try {
    depth(2);
  } catch (const Base &b) {
    std::printf("caught by base: %s, code %d\n", b.what(), dynamic_cast<const Derived &>(b).code);
  }
  try {
    rethrows();
  } catch (const Derived &d) {
    std::printf("rethrown derived %d\n", d.code);
  }
  try {
    try {
      throw std::string("inner");
    } catch (const std::string &s) {
      std::printf("nested inner %s\n", s.c_str());
      throw std::out_of_range("outer");
    }
  } catch (const std::logic_error &e) {
    std::printf("nested outer %s\n", e.what());
  }
  try {
    throw 3.5;
  } catch (...) {
    std::printf("catch-all\n");
  }
  try {
    Guarded g(-1);
  } catch (const std::exception &e) {
    std::printf("constructor failed: %s\n", e.what());
  }
  std::set_terminate(on_terminate);
  no_throw_promised();
  return 0;
}
