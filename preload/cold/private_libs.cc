#include "private_libs.h"

#include <dlfcn.h>

#include <atomic>
#include <libunwind.h>

#include "../hot/stack.h"

namespace rsr::cold {

PrivateHeap g_heap;

namespace {

std::atomic<size_t> g_heap_in_use{0};

template <class F>
bool bind(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

}  // namespace

bool load_private_heap() {
  void* lib = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  PrivateHeap h;
  if (!bind(lib, "mi_malloc", &h.malloc) || !bind(lib, "mi_calloc", &h.calloc) ||
      !bind(lib, "mi_realloc", &h.realloc) || !bind(lib, "mi_free", &h.free))
    return false;
  if (!bind(lib, "mi_usable_size", &h.usable_size)) return false;
  g_heap = h;
  return true;
}

bool load_unwinder() {
  void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  decltype(&unw_backtrace) backtrace = nullptr;
  int (*set_caching_policy)(void*, int) = nullptr;
  void** local_addr_space = nullptr;
  if (!bind(lib, "unw_backtrace", &backtrace)) return false;
  // A per-thread cache lets threads unwind without taking libunwind's global lock (which blocks
  // signals around every use).
  if (bind(lib, "_ULx86_64_set_caching_policy", &set_caching_policy) &&
      bind(lib, "_ULx86_64_local_addr_space", &local_addr_space)) {
    constexpr int kCachePerThread = 2;  // UNW_CACHE_PER_THREAD
    set_caching_policy(*local_addr_space, kCachePerThread);
  }
  hot::g_stack.backtrace = backtrace;
  return true;
}

void* heap_alloc(size_t n) {
  void* p = g_heap.malloc(n);
  if (p) g_heap_in_use.fetch_add(g_heap.usable_size(p), std::memory_order_relaxed);
  return p;
}

void heap_free(void* p) {
  if (!p) return;
  g_heap_in_use.fetch_sub(g_heap.usable_size(p), std::memory_order_relaxed);
  g_heap.free(p);
}

size_t private_heap_bytes() { return g_heap_in_use.load(std::memory_order_relaxed); }

}  // namespace rsr::cold
