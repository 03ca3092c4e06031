#include <stdexcept>
#include <string>

int throw_from_archive_member(int v) {
  throw std::runtime_error("member " + std::to_string(v));
}
