#include "private_libs.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <cstring>

#include <libunwind.h>

#include "../hot/private.h"
#include "../hot/stack.h"
#include "config.h"
#include "unwinder_pipe.h"

namespace rsr::cold {

namespace {

// librsrmem-heap.so, beside this library (installed together); else wherever the loader's search
// finds one (a copy of the library run from elsewhere, the package installed).
void* open_heap_loader() {
  constexpr char kName[] = "librsrmem-heap.so";
  constexpr int kMode = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
  dl_find_object self{};
  const char* path = nullptr;
  if (_dl_find_object(reinterpret_cast<void*>(&open_heap_loader), &self) == 0 && self.dlfo_link_map)
    path = self.dlfo_link_map->l_name;
  const char* slash = path ? std::strrchr(path, '/') : nullptr;
  char file[kPathMax];
  const int dir = slash ? static_cast<int>(slash - path) : 0;
  if (slash && dir + sizeof kName + 1 <= sizeof file) {
    std::snprintf(file, sizeof file, "%.*s/%s", dir, path, kName);
    if (void* beside = dlopen(file, kMode)) return beside;
  }
  return dlopen(kName, kMode);
}

}  // namespace

bool load_private_heap() {
  void* lib = open_heap_loader();
  if (!lib) return false;
  hot::PrivateHeap h;
  if (!bind_symbol(lib, "mi_malloc", &h.malloc) || !bind_symbol(lib, "mi_calloc", &h.calloc) ||
      !bind_symbol(lib, "mi_realloc", &h.realloc) || !bind_symbol(lib, "mi_malloc_aligned", &h.malloc_aligned) ||
      !bind_symbol(lib, "mi_free", &h.free) || !bind_symbol(lib, "mi_usable_size", &h.usable_size))
    return false;
  hot::g_private = h;
  return true;
}

bool load_unwinder() {
  void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return false;
  decltype(&unw_backtrace) backtrace = nullptr;
  int (*set_caching_policy)(void*, int) = nullptr;
  void** local_addr_space = nullptr;
  if (!bind_symbol(lib, "unw_backtrace", &backtrace)) return false;
  unwinder_pipe_before_init(lib);
  // A per-thread cache lets threads unwind without taking libunwind's global lock (which blocks
  // signals around every use).
  if (bind_symbol(lib, "_ULx86_64_set_caching_policy", &set_caching_policy) &&
      bind_symbol(lib, "_ULx86_64_local_addr_space", &local_addr_space)) {
    constexpr int kCachePerThread = 2;  // UNW_CACHE_PER_THREAD
    set_caching_policy(*local_addr_space, kCachePerThread);
  }
  void* frames[4];
  backtrace(frames, 4);  // libunwind initialises at its first use, if the above did not
  unwinder_pipe_after_init();
  hot::StackCapture& sc = hot::g_stack;
  if (!bind_symbol(lib, "_Ux86_64_getcontext", &sc.getcontext) || !bind_symbol(lib, "_ULx86_64_init_local", &sc.init_local) ||
      !bind_symbol(lib, "_ULx86_64_step", &sc.step) || !bind_symbol(lib, "_ULx86_64_get_reg", &sc.get_reg)) {
    sc.step = nullptr;  // unw_backtrace for every stack
  }
  sc.backtrace = backtrace;
  return true;
}

void* heap_alloc(size_t n) {
  void* p = hot::g_private.malloc(n);
  if (p) hot::g_private_bytes.fetch_add(hot::g_private.usable_size(p), std::memory_order_relaxed);
  return p;
}

void heap_free(void* p) {
  if (!p) return;
  hot::g_private_bytes.fetch_sub(hot::g_private.usable_size(p), std::memory_order_relaxed);
  hot::g_private.free(p);
}

size_t private_heap_bytes() { return hot::g_private_bytes.load(std::memory_order_relaxed); }

}  // namespace rsr::cold
