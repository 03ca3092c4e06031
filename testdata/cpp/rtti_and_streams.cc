//# libs: -lstdc++
// RTTI and vtables of library classes (typeid, dynamic_cast, a class derived from
// std::runtime_error), iostreams and a thrown library-derived type: typeinfo and vtables
// that -fno-pic code names with 32-bit absolute addresses get copies or stubs.
#include <cstdio>
#include <stdexcept>
#include <typeinfo>
#include <sstream>
struct Mine : std::runtime_error { Mine() : std::runtime_error("mine") {} };
int main() {
  std::exception *e = new Mine;
  std::printf("%d %d %s\n", dynamic_cast<std::runtime_error *>(e) != nullptr,
              typeid(*e) == typeid(Mine), typeid(int).name());
  std::ostringstream out; out << 42 << " " << 3.5; std::printf("%s\n", out.str().c_str());
  try { throw Mine(); } catch (const std::runtime_error &r) { std::printf("caught %s\n", r.what()); }
  const std::type_info &ti = typeid(std::logic_error);
  std::printf("%s\n", ti.name());
  return 0;
}
