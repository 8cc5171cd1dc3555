// Exception objects for the library's own C++ runtime (linked in statically, hidden). These
// replace libstdc++'s, whose emergency pool would take a 73 KB block from the program's heap in
// the constructor of every process the library is loaded in. The library throws only when its
// private heap is exhausted, and catches itself; such an exception is allocated with the guard
// held, so from the private heap (or, failing that, the next allocator).
//
// The layout is the Itanium C++ ABI's, as GCC's runtime builds it on x86-64: a reference-counted
// header of 128 bytes in front of the thrown object, zeroed.
#include <cstdlib>
#include <cstring>
#include <exception>

namespace {
constexpr size_t kHeader = 128;
}

extern "C" {

void* __cxa_allocate_exception(size_t thrown_size) noexcept {
  char* p = static_cast<char*>(malloc(thrown_size + kHeader));
  if (!p) std::terminate();
  std::memset(p, 0, kHeader);
  return p + kHeader;
}

void __cxa_free_exception(void* thrown) noexcept { free(static_cast<char*>(thrown) - kHeader); }

}  // extern "C"
