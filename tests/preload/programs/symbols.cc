// Symbol resolution and forwarding, seen from a C++ program linked against libstdc++.
#include <new>
#include <string>
#include <vector>

#include "symbol_checks.h"

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return 2;
  run_symbol_checks(argv[1]);

  // The operator new/delete this executable itself was bound to.
  void* own_new = reinterpret_cast<void*>(static_cast<void* (*)(std::size_t)>(&::operator new));
  void* own_delete = reinterpret_cast<void*>(static_cast<void (*)(void*) noexcept>(&::operator delete));
  void* own_new_aligned =
      reinterpret_cast<void*>(static_cast<void* (*)(std::size_t, std::align_val_t)>(&::operator new));
  check(strstr(owner_of(own_new), "librsrmem") != nullptr, "program's operator new is librsrmem's", "bound to %s",
        owner_of(own_new));
  check(strstr(owner_of(own_delete), "librsrmem") != nullptr, "program's operator delete is librsrmem's",
        "bound to %s", owner_of(own_delete));
  check(strstr(owner_of(own_new_aligned), "librsrmem") != nullptr, "program's aligned operator new is librsrmem's",
        "bound to %s", owner_of(own_new_aligned));

  size_t before = arena_in_use();
  char* p = new char[30000];
  check_from_glibc("new char[30000]", p, 30000, arena_in_use() - before);
  delete[] p;
  before = arena_in_use();
  auto* v = new std::vector<std::string>(100, std::string(200, 'v'));
  check_from_glibc("std::vector<std::string>", v->data(), 100 * sizeof(std::string), arena_in_use() - before);
  delete v;
  before = arena_in_use();
  void* a = ::operator new(20000, std::align_val_t(512));
  check_from_glibc("operator new(20000, align 512)", a, 20000, arena_in_use() - before);
  ::operator delete(a, std::align_val_t(512));
  return finish();
}
