#include <cstdio>

struct Other {
  Other() { std::printf("construct other\n"); }
  ~Other() { std::printf("destroy other\n"); }
};

Other other;

void use_other() { std::printf("use other\n"); }
