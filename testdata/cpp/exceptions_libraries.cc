//# libs: -lstdc++
// Exceptions that cross library frames: thrown by a callback that libc's qsort or
// std::sort calls, from a new-handler that libstdc++'s operator new calls, and thrown by
// libstdc++ itself (std::stoi, operator new, std::vector::at).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

struct CompareFailed {
  int left, right;
};

extern "C" int compare_or_throw(const void *a, const void *b) {
  int x = *static_cast<const int *>(a), y = *static_cast<const int *>(b);
  if (x == 13 || y == 13) throw CompareFailed{x, y};
  return (x > y) - (x < y);
}

int main() {
  int values[] = {5, 3, 13, 1, 8};
  try {
    std::qsort(values, 5, sizeof(int), compare_or_throw);
    std::printf("qsort finished\n");
  } catch (const CompareFailed &) {
    std::printf("thrown through qsort\n");
  }

  std::vector<int> numbers = {9, 4, 13, 2, 7, 1};
  try {
    std::sort(numbers.begin(), numbers.end(), [](int a, int b) {
      if (a == 13 || b == 13) throw std::runtime_error("thirteen");
      return a < b;
    });
  } catch (const std::runtime_error &e) {
    std::printf("thrown through std::sort: %s\n", e.what());
  }

  struct OutOfMemory {};
  std::set_new_handler([] { throw OutOfMemory{}; });
  try {
    volatile size_t huge = ~size_t(0) / 4;
    char *p = new char[huge];
    std::printf("allocated %p\n", static_cast<void *>(p));
  } catch (OutOfMemory) {
    std::printf("thrown by the new-handler through operator new\n");
  }
  std::set_new_handler(nullptr);

  try {
    std::printf("%d\n", std::stoi("not a number"));
  } catch (const std::invalid_argument &) {
    std::printf("stoi threw invalid_argument\n");
  }
  try {
    std::vector<int> small(3);
    std::printf("%d\n", small.at(10));
  } catch (const std::out_of_range &) {
    std::printf("at threw out_of_range\n");
  }
  try {
    volatile size_t huge = ~size_t(0) / 2;
    char *p = new char[huge];
    std::printf("allocated %p\n", static_cast<void *>(p));
  } catch (const std::bad_alloc &) {
    std::printf("new threw bad_alloc\n");
  }
  return 0;
}
