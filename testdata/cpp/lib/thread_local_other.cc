// thread_local definitions for thread_local.cc: one dynamically initialised (it has an init
// function), one constant-initialised (it has none).
#include <cstdio>

struct Counter {
  int value;
  Counter();
  ~Counter();
};

Counter::Counter() : value(1000) { std::printf("  construct other_counter\n"); }
Counter::~Counter() { std::printf("  destroy other_counter at %d\n", value); }

thread_local Counter other_counter;
thread_local int other_plain = 3;
static thread_local Counter *last_seen = nullptr;

int other_touch() {
  int changed = last_seen != &other_counter;
  last_seen = &other_counter;
  return changed;
}
