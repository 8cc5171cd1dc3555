#include "real.h"

#include <dlfcn.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace rsr::real {
namespace {

// Bootstrap arena: bump allocation from a static buffer, each block preceded by its size.
std::atomic<size_t> g_arena_used{0};
std::atomic<int> g_resolving{0};
std::atomic<bool> g_resolved{false};

constexpr size_t kHeader = 16;

void* arena_alloc(size_t size, size_t align) {
  if (align < kHeader) align = kHeader;
  if (size > kArenaBytes) return nullptr;
  size_t used = g_arena_used.load(std::memory_order_relaxed);
  for (;;) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(g_arena);
    uintptr_t start = (base + used + kHeader + align - 1) & ~(uintptr_t{align} - 1);
    const size_t end = start + size - base;
    if (end > kArenaBytes) return nullptr;
    if (g_arena_used.compare_exchange_weak(used, end, std::memory_order_relaxed)) {
      reinterpret_cast<size_t*>(start)[-1] = size;
      return reinterpret_cast<void*>(start);  // static storage is zeroed: calloc is satisfied
    }
  }
}

void* boot_malloc(size_t n);
void boot_free(void* p);
void* boot_calloc(size_t n, size_t s);
void* boot_realloc(void* p, size_t n);
void* boot_reallocarray(void* p, size_t n, size_t s);
int boot_posix_memalign(void** out, size_t align, size_t n);
void* boot_aligned_alloc(size_t align, size_t n);
void* boot_memalign(size_t align, size_t n);
void* boot_valloc(size_t n);
void* boot_pvalloc(size_t n);
size_t boot_usable(void* p);

// While this thread (or any) is resolving, allocations come from the arena.
bool use_arena() { return !g_resolved.load(std::memory_order_acquire) && (g_resolving.load() || !resolve()); }

void* boot_malloc(size_t n) {
  if (use_arena()) return arena_alloc(n, kHeader);
  return fn.malloc(n);
}
void boot_free(void* p) {
  if (p == nullptr || is_bootstrap(p)) return;
  if (use_arena()) return;  // cannot happen: nothing but the arena has handed out memory yet
  fn.free(p);
}
void* boot_calloc(size_t n, size_t s) {
  if (use_arena()) {
    size_t total;
    if (__builtin_mul_overflow(n, s, &total)) {
      errno = ENOMEM;
      return nullptr;
    }
    return arena_alloc(total, kHeader);
  }
  return fn.calloc(n, s);
}
void* boot_realloc(void* p, size_t n) {
  if (use_arena()) {
    void* q = arena_alloc(n, kHeader);
    if (q && p) {
      const size_t old = bootstrap_usable_size(p);
      std::memcpy(q, p, old < n ? old : n);
    }
    return q;
  }
  return fn.realloc(p, n);
}
void* boot_reallocarray(void* p, size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (use_arena()) return boot_realloc(p, total);
  return fn.reallocarray(p, n, s);
}
int boot_posix_memalign(void** out, size_t align, size_t n) {
  if (use_arena()) {
    void* q = arena_alloc(n, align);
    if (!q) return ENOMEM;
    *out = q;
    return 0;
  }
  return fn.posix_memalign(out, align, n);
}
void* boot_aligned_alloc(size_t align, size_t n) {
  if (use_arena()) return arena_alloc(n, align);
  return fn.aligned_alloc(align, n);
}
void* boot_memalign(size_t align, size_t n) {
  if (use_arena()) return arena_alloc(n, align);
  return fn.memalign(align, n);
}
void* boot_valloc(size_t n) {
  if (use_arena()) return arena_alloc(n, 4096);
  return fn.valloc(n);
}
void* boot_pvalloc(size_t n) {
  if (use_arena()) return arena_alloc((n + 4095) & ~size_t{4095}, 4096);
  return fn.pvalloc(n);
}
size_t boot_usable(void* p) {
  if (p == nullptr) return 0;
  if (is_bootstrap(p)) return bootstrap_usable_size(p);
  if (use_arena()) return 0;
  return fn.malloc_usable_size(p);
}

// Fallbacks for entry points an allocator may lack, built on the mandatory four.
void* fallback_reallocarray(void* p, size_t n, size_t s) {
  size_t total;
  if (__builtin_mul_overflow(n, s, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return fn.realloc(p, total);
}
void* fallback_aligned_alloc(size_t align, size_t n) {
  void* p = nullptr;
  const int rc = fn.posix_memalign(&p, align, n);
  if (rc != 0) {
    errno = rc;
    return nullptr;
  }
  return p;
}

bool from_libc(void* f) {
  Dl_info info{};
  return dladdr(f, &info) != 0 && info.dli_fname && std::strstr(info.dli_fname, "/libc.so.6");
}

template <class F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

alignas(64) char g_arena[kArenaBytes];
bool g_glibc_chunks = false;

constinit Table fn = {boot_malloc,         boot_free,          boot_calloc,   boot_realloc,
            boot_reallocarray,   boot_posix_memalign, boot_aligned_alloc, boot_memalign,
            boot_valloc,         boot_pvalloc,       boot_usable};

bool resolve() {
  if (g_resolved.load(std::memory_order_acquire)) return true;
  int expected = 0;
  if (!g_resolving.compare_exchange_strong(expected, 1)) return false;  // someone else is at it
  Table t{};
  t.malloc = next<decltype(t.malloc)>("malloc");
  t.free = next<decltype(t.free)>("free");
  t.calloc = next<decltype(t.calloc)>("calloc");
  t.realloc = next<decltype(t.realloc)>("realloc");
  t.reallocarray = next<decltype(t.reallocarray)>("reallocarray");
  t.posix_memalign = next<decltype(t.posix_memalign)>("posix_memalign");
  t.aligned_alloc = next<decltype(t.aligned_alloc)>("aligned_alloc");
  t.memalign = next<decltype(t.memalign)>("memalign");
  t.valloc = next<decltype(t.valloc)>("valloc");
  t.pvalloc = next<decltype(t.pvalloc)>("pvalloc");
  t.malloc_usable_size = next<decltype(t.malloc_usable_size)>("malloc_usable_size");
  if (!t.malloc || !t.free || !t.calloc || !t.realloc || !t.posix_memalign ||
      !t.malloc_usable_size) {
    g_resolving.store(0);
    return false;
  }
  // Publish entry by entry; each is a single aligned pointer store.
  fn.malloc_usable_size = t.malloc_usable_size;
  fn.posix_memalign = t.posix_memalign;
  fn.realloc = t.realloc;
  fn.reallocarray = t.reallocarray ? t.reallocarray : fallback_reallocarray;
  fn.aligned_alloc = t.aligned_alloc ? t.aligned_alloc : fallback_aligned_alloc;
  fn.memalign = t.memalign ? t.memalign : fallback_aligned_alloc;
  fn.valloc = t.valloc ? t.valloc : boot_valloc;
  fn.pvalloc = t.pvalloc ? t.pvalloc : boot_pvalloc;
  fn.calloc = t.calloc;
  fn.free = t.free;
  fn.malloc = t.malloc;
  g_glibc_chunks = from_libc(reinterpret_cast<void*>(t.malloc)) &&
                   from_libc(reinterpret_cast<void*>(t.malloc_usable_size));
  g_resolved.store(true, std::memory_order_release);
  g_resolving.store(0);
  return true;
}

size_t bootstrap_usable_size(const void* p) { return static_cast<const size_t*>(p)[-1]; }

}  // namespace rsr::real
