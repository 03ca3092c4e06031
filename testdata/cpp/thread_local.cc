//# libs: -lstdc++
//# with: lib/thread_local_other.cc
// thread_local objects with constructors and destructors: constructed on a thread's first use
// (through the TLS init and wrapper functions), destroyed when that thread exits (registered
// with __cxa_thread_atexit), the main thread's before the static destructors. Also an extern
// thread_local from another object, reached through its _ZTW wrapper, one whose wrapper finds
// no init function (a weak undefined _ZTH), and a function-local static thread_local.
#include <cstdio>
#include <string>
#include <thread>

struct Noisy {
  std::string name;
  int uses = 0;
  explicit Noisy(const char *n) : name(n) { std::printf("  construct %s\n", name.c_str()); }
  ~Noisy() { std::printf("  destroy %s after %d uses\n", name.c_str(), uses); }
};

Noisy static_object("static object");
thread_local Noisy global_tl("global thread_local");
thread_local int constant_tl = 7;  // constant initialisation: no init function

struct Counter {
  int value;
  Counter();
  ~Counter();
};
extern thread_local Counter other_counter;  // dynamic init in lib/thread_local_other.cc
extern thread_local int other_plain;        // constant init there: its wrapper calls nothing
int other_touch();

Noisy &function_local() {
  static thread_local Noisy local("function-local thread_local");
  local.uses++;
  return local;
}

void work(const char *who, int n) {
  std::printf("%s begins, constant_tl %d other_plain %d\n", who, constant_tl, other_plain);
  global_tl.uses += n;
  function_local();
  function_local();
  constant_tl += n;
  other_plain += n;
  other_counter.value += n;
  std::printf("%s: global uses %d, local uses %d, constant_tl %d, other_plain %d, "
              "other_counter %d, other_touch %d\n",
              who, global_tl.uses, function_local().uses, constant_tl, other_plain,
              other_counter.value, other_touch());
}

int main() {
  std::printf("main starts\n");
  work("main", 1);
  for (int n = 1; n <= 2; n++) {
    std::printf("thread %d starts\n", n);
    // One thread at a time: its output, destructors included, ends before the next begins.
    std::thread thread(work, n == 1 ? "thread 1" : "thread 2", 10 * n);
    thread.join();
    std::printf("thread %d joined\n", n);
  }
  std::thread untouched([] { std::printf("a thread that uses no thread_local\n"); });
  untouched.join();
  work("main again", 100);
  std::printf("main returns\n");
  return 0;
}
