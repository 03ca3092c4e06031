//# libs: -lstdc++
// std::call_once: libstdc++'s inline code stores the callable in thread-local variables that
// the shared library defines (std::__once_callable, std::__once_call), so the program refers
// to another module's TLS. Each flag's function runs once, whichever thread gets there first.
#include <cstdio>
#include <mutex>
#include <thread>

static std::once_flag first_flag, second_flag;
static int runs;

static void count_run(int *counter, int by) { *counter += by; }

int main() {
  int value = 0;
  std::call_once(first_flag, count_run, &value, 5);
  std::call_once(first_flag, count_run, &value, 100);
  std::printf("main: value %d\n", value);
  for (int n = 1; n <= 3; n++) {
    std::thread thread([n] {
      std::call_once(second_flag, [n] { runs += n; });
      std::call_once(first_flag, [] { runs += 1000; });
    });
    thread.join();
    std::printf("after thread %d: runs %d\n", n, runs);
  }
  std::call_once(second_flag, [] { runs += 10000; });
  std::printf("main again: runs %d\n", runs);
  return 0;
}
