// A C++ shared object loaded with dlopen by C programs (dlopen_main.c, symbols.c, live_bytes.c):
// its operator new/delete calls are bound when it is loaded, so they show whether the preload's
// operator new is the one the process uses even when the main program is C.
// Built with -fno-gnu-unique so dlclose really unloads it.
#include <cstddef>
#include <map>
#include <new>
#include <string>
#include <vector>

namespace {
// Static initialisation and destruction that allocate, run at every dlopen/dlclose.
std::map<int, std::string> g_table = [] {
  std::map<int, std::string> m;
  for (int i = 0; i < 64; ++i) m[i] = std::string(static_cast<size_t>(20 + i), 'p');
  return m;
}();
}  // namespace

extern "C" {

// Allocation-heavy work; the result depends only on n.
long payload_work(int n) {
  std::vector<std::string> v;
  std::map<std::string, int> m;
  long sum = 0;
  for (int i = 0; i < n; ++i) {
    v.push_back(std::to_string(i * 7919) + g_table[i % 64]);
    m[v.back()] = i;
  }
  for (const auto& [k, i] : m) sum += static_cast<long>(k.size()) * (i + 1);
  auto* boxed = new std::vector<long>(static_cast<size_t>(n), 3);
  for (long x : *boxed) sum += x;
  delete boxed;
  return sum;
}

void* payload_make(size_t n) {
  char* p = new char[n];
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(i);
  return p;
}

void payload_release(void* p) { delete[] static_cast<char*>(p); }

void* payload_make_aligned(size_t n) { return ::operator new(n, std::align_val_t(256)); }
void payload_release_aligned(void* p) { ::operator delete(p, std::align_val_t(256)); }

// The operator new/delete this object was bound to by the dynamic linker.
void* payload_new_address(void) {
  return reinterpret_cast<void*>(static_cast<void* (*)(std::size_t)>(&::operator new));
}
void* payload_delete_address(void) {
  return reinterpret_cast<void*>(static_cast<void (*)(void*) noexcept>(&::operator delete));
}

}  // extern "C"
