#include "real.h"

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "hot/engine.h"

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
      // Its filter slot stays raised for good (255 is sticky): free() finds it among the
      // possibly-sampled blocks and leaves it alone, without a range test of its own.
      hot::g_filter[hot::filter_index(reinterpret_cast<void*>(start))].store(255, std::memory_order_relaxed);
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

// Fallbacks for entry points an allocator may lack, built on the mandatory ones.
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
void* fallback_valloc(size_t n) { return fallback_aligned_alloc(4096, n); }
void* fallback_pvalloc(size_t n) {
  if (n > SIZE_MAX - 4095) {
    errno = ENOMEM;
    return nullptr;
  }
  return fallback_aligned_alloc(4096, (n + 4095) & ~size_t{4095});
}

// The loaded object that holds `f` (false when none): _dl_find_object is a lookup in the
// loader's sorted table; dladdr would also scan the object's symbol table for the nearest symbol
// (libc's has thousands), which made it most of the start-up's cost.
bool find_object(const void* f, dl_find_object* out) { return _dl_find_object(const_cast<void*>(f), out) == 0; }

bool from_libc(const void* f) {
  dl_find_object found{};
  return find_object(f, &found) && found.dlfo_link_map->l_name && std::strstr(found.dlfo_link_map->l_name, "/libc.so.6");
}

// Base address of the object holding `f` (null when unknown).
const void* object_of(const void* f) {
  dl_find_object found{};
  return find_object(f, &found) ? found.dlfo_map_start : nullptr;
}

// Where the table's entries come from: normally the next object after this library
// (RTLD_NEXT). When the process's `malloc` is not ours (an allocator before us in LD_PRELOAD, or
// linked into the executable), every call must go to that allocator instead, or a block would be
// allocated by one allocator and freed by another: entries then come from that object's scope,
// and one that only we define is built from the others.
void* g_source = RTLD_NEXT;

const void* self_object() { return object_of(reinterpret_cast<const void*>(&resolve)); }

template <class F>
F next(const char* name) {
  void* f = dlsym(g_source, name);
  if (f && g_source != RTLD_NEXT && object_of(f) == self_object()) return nullptr;
  return reinterpret_cast<F>(f);
}

// The object whose `malloc` the process uses: the first one in load order (the program, then
// LD_PRELOAD, then the rest) that defines it. A non-PIE program that takes malloc's address
// makes dlsym answer with its own PLT stub, which dladdr even names "malloc": only a symbol
// the object defines (not SHN_UNDEF) counts. Sets `*handle` to that object's.
const void* malloc_definer(void** handle, const char** name) {
  // The usual case, at the cost of one lookup: the process's malloc is this library's.
  if (const void* self = self_object(); object_of(dlsym(RTLD_DEFAULT, "malloc")) == self) return self;
  void* program = dlopen(nullptr, RTLD_LAZY | RTLD_NOLOAD);
  link_map* lm = nullptr;
  if (!program || dlinfo(program, RTLD_DI_LINKMAP, &lm) != 0) return nullptr;
  for (; lm; lm = lm->l_next) {
    // The program's handle searches the global scope; another object's, itself and its needs.
    void* h = lm->l_prev == nullptr ? program : dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) continue;
    void* f = dlsym(h, "malloc");
    Dl_info info{};
    void* entry = nullptr;
    const bool here = f && dladdr1(f, &info, &entry, RTLD_DL_SYMENT) != 0 && entry &&
                      static_cast<const ElfW(Sym)*>(entry)->st_shndx != SHN_UNDEF && info.dli_saddr == f &&
                      info.dli_fbase == object_of(lm->l_ld);
    if (!here) {
      if (h != program) dlclose(h);
      continue;
    }
    *handle = h;  // kept open: the table's entries come from it
    *name = lm->l_prev == nullptr ? kShadowedByProgram : info.dli_fname;
    return info.dli_fbase;
  }
  return nullptr;
}

}  // namespace

RSR_LARGE_BSS alignas(64) char g_arena[kArenaBytes];
bool g_glibc_chunks = false;
const char* g_shadowed_by = nullptr;

constinit Table fn = {boot_malloc,         boot_free,          boot_calloc,   boot_realloc,
            boot_reallocarray,   boot_posix_memalign, boot_aligned_alloc, boot_memalign,
            boot_valloc,         boot_pvalloc,       boot_usable};

bool resolve() {
  if (g_resolved.load(std::memory_order_acquire)) return true;
  int expected = 0;
  if (!g_resolving.compare_exchange_strong(expected, 1)) return false;  // someone else is at it
  void* definer_handle = nullptr;
  const char* definer_name = nullptr;
  const void* definer = malloc_definer(&definer_handle, &definer_name);
  if (definer && definer != self_object()) {
    g_source = definer_handle;
    g_shadowed_by = definer_name && *definer_name ? definer_name : kShadowedByProgram;
  }
  Table t{};
  // A mandatory entry the shadowing allocator lacks: the one the process would find without us.
  const auto mandatory = [](const char* name) -> void* {
    void* f = next<void*>(name);
    return f ? f : dlsym(RTLD_NEXT, name);
  };
  t.malloc = reinterpret_cast<decltype(t.malloc)>(mandatory("malloc"));
  t.free = reinterpret_cast<decltype(t.free)>(mandatory("free"));
  t.calloc = reinterpret_cast<decltype(t.calloc)>(mandatory("calloc"));
  t.realloc = reinterpret_cast<decltype(t.realloc)>(mandatory("realloc"));
  t.posix_memalign = reinterpret_cast<decltype(t.posix_memalign)>(mandatory("posix_memalign"));
  t.malloc_usable_size = reinterpret_cast<decltype(t.malloc_usable_size)>(mandatory("malloc_usable_size"));
  // The optional entries only from the object that provides malloc: one the allocator lacks
  // would otherwise be found further on (jemalloc has no pvalloc: glibc's would hand out a block
  // that jemalloc's free cannot take back). The fallbacks build them on the allocator's own.
  const void* allocator = object_of(reinterpret_cast<const void*>(t.malloc));
  const auto optional = [allocator](const char* name) -> void* {
    void* f = next<void*>(name);
    return f && object_of(f) == allocator ? f : nullptr;
  };
  t.reallocarray = reinterpret_cast<decltype(t.reallocarray)>(optional("reallocarray"));
  t.aligned_alloc = reinterpret_cast<decltype(t.aligned_alloc)>(optional("aligned_alloc"));
  t.memalign = reinterpret_cast<decltype(t.memalign)>(optional("memalign"));
  t.valloc = reinterpret_cast<decltype(t.valloc)>(optional("valloc"));
  t.pvalloc = reinterpret_cast<decltype(t.pvalloc)>(optional("pvalloc"));
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
  fn.valloc = t.valloc ? t.valloc : fallback_valloc;
  fn.pvalloc = t.pvalloc ? t.pvalloc : fallback_pvalloc;
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

void* arena_malloc(size_t n) { return arena_alloc(n, kHeader); }

}  // namespace rsr::real
