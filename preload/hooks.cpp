// The only file that defines the allocation API. Each hook forwards to the next allocator
// (real.h) and reports to the engine (hot/engine.h): an allocation after the next allocator
// returned it, a free before the block is handed back, so its address cannot be reused by
// another thread in between.
//
// Calls made with the guard held (from inside the engine) are served by the engine's private
// heap instead (hot/private.h); that test costs the fast path one TLS byte compare.
//
// operator new/delete are implemented here on top of the next allocator's malloc, with the
// standard's semantics (new-handler loop, std::bad_alloc, nothrow), so a C++ allocation is one
// hook and one call, and a C program that later dlopen()s C++ code is tracked the same way.
// The library carries its own C++ runtime, linked in and hidden (loading libstdc++ would cost
// every process it starts in); the handler and the exception are the program's: its runtime is
// where std::set_new_handler put the handler, and where std::bad_alloc is thrown from its
// emergency pool when memory is exhausted.
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>

#include <cerrno>
#include <cstddef>
#include <new>

#include "hot/engine.h"
#include "hot/launch.h"
#include "hot/private.h"
#include "hot/tables.h"
#include "real.h"

using rsr::real::fn;

// Serves the call from the private heap when this thread holds the guard; falls through to the
// next allocator when it does not, or when the private heap cannot serve it.
#define RSR_GUARDED_CALLS_GO_PRIVATE(private_call)                                   \
  if (rsr::hot::t_state.fast != 1 && rsr::hot::route_private()) [[unlikely]] {       \
    if (void* q = (private_call)) return q;                                          \
  }

// While this thread makes the control thread (hot/launch.h), its calls come from the bootstrap
// arena: it may be in a signal handler that interrupted the next allocator.
#define RSR_LAUNCHING_CALLS_GO_TO_ARENA(bytes)                                                    \
  if (rsr::hot::t_state.fast != 1 &&                                                             \
      rsr::hot::g_launching.load(std::memory_order_relaxed) == &rsr::hot::t_state) [[unlikely]] { \
    if (void* q = rsr::real::arena_malloc(bytes)) return q;                                      \
  }

namespace {

[[gnu::always_inline]] inline void* track(void* p) {
  if (p == nullptr) [[unlikely]] return p;
  return rsr::hot::on_alloc(p);
}

[[gnu::always_inline]] inline void release(void* p) { rsr::hot::free_to_next(p); }  // p may be null

// The program's C++ runtime (libstdc++, or any with the Itanium ABI), looked up when an
// allocation fails: rare, so nothing is cached. Its handler is the one std::set_new_handler set;
// its std::bad_alloc is what the program catches, thrown by its runtime's unwinder (the library's
// own, linked in, cannot unwind through the program's frames). Nothing in this file catches an
// exception: its frames carry no handlers and stay transparent to either runtime.
template <class T>
T program_symbol(const char* name) {
  return reinterpret_cast<T>(dlsym(RTLD_DEFAULT, name));
}

std::new_handler program_new_handler() {
  auto get = program_symbol<std::new_handler (*)()>("_ZSt15get_new_handlerv");
  return get ? get() : nullptr;
}

[[noreturn]] void throw_bad_alloc() {
  if (rsr::hot::t_state.guard == 0) {  // the program's call: its runtime throws
    using Allocate = void* (*)(size_t);
    using Throw = void (*)(void*, void*, void (*)(void*));
    auto allocate = program_symbol<Allocate>("__cxa_allocate_exception");
    auto raise = program_symbol<Throw>("__cxa_throw");
    auto vtable = program_symbol<char*>("_ZTVSt9bad_alloc");
    auto type = program_symbol<void*>("_ZTISt9bad_alloc");
    auto destroy = program_symbol<void (*)(void*)>("_ZNSt9bad_allocD1Ev");
    if (allocate && raise && vtable && type && destroy) {
      // std::bad_alloc is one vtable pointer; the ABI's address point follows the offset-to-top
      // and typeinfo slots.
      void* e = allocate(sizeof(void*));
      *static_cast<char**>(e) = vtable + 2 * sizeof(void*);
      raise(e, type, destroy);
    }
  }
  throw std::bad_alloc();  // the library's own code (it catches with its own runtime)
}

bool is_private(const void* p) {
  return rsr::hot::filter_hit(p) && rsr::hot::block_find(p) == rsr::hot::Tracked::kPrivate;
}

// operator new's way when the fast path may not run, or when the allocation failed.
[[gnu::noinline]] void* new_slowly(size_t n) {
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_malloc(n));
  for (;;) {
    if (void* p = fn.malloc(n)) [[likely]] return rsr::hot::on_alloc(p);
    std::new_handler h = program_new_handler();
    if (!h) throw_bad_alloc();
    h();
  }
}

void* new_or_throw(size_t n) {
  if (n == 0) n = 1;
  if (rsr::hot::t_state.fast == 1) [[likely]] {
    if (void* p = fn.malloc(n)) [[likely]] return rsr::hot::on_alloc_fast(p);
  }
  return new_slowly(n);
}

// operator new's alignment, at least what posix_memalign accepts.
size_t new_alignment(std::align_val_t al) {
  const size_t align = static_cast<size_t>(al);
  return align < sizeof(void*) ? sizeof(void*) : align;
}

void* aligned_new_or_throw(size_t n, std::align_val_t al) {
  const size_t align = new_alignment(al);
  if (n == 0) n = 1;
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(align, n));
  for (;;) {
    void* p = nullptr;
    if (fn.posix_memalign(&p, align, n) == 0) [[likely]] return rsr::hot::on_alloc(p);
    std::new_handler h = program_new_handler();
    if (!h) throw_bad_alloc();
    h();
  }
}

// nothrow: null when memory is exhausted. With a new_handler set, the program's own nothrow
// operator takes over: it runs the handler loop through operator new (this library's, so the
// block is tracked) and catches what a handler throws, with its own runtime. `variant` is its
// mangled name.
void* new_nothrow(size_t n, const char* variant) noexcept {
  if (n == 0) n = 1;
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_malloc(n));
  if (void* p = fn.malloc(n)) [[likely]] return rsr::hot::on_alloc(p);
  if (!program_new_handler()) return nullptr;
  auto next = reinterpret_cast<void* (*)(size_t, const std::nothrow_t&)>(dlsym(RTLD_NEXT, variant));
  return next ? next(n, std::nothrow) : nullptr;
}

void* aligned_new_nothrow(size_t n, std::align_val_t al, const char* variant) noexcept {
  const size_t align = new_alignment(al);
  if (n == 0) n = 1;
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(align, n));
  void* p = nullptr;
  if (fn.posix_memalign(&p, align, n) == 0) [[likely]] return rsr::hot::on_alloc(p);
  if (!program_new_handler()) return nullptr;
  auto next = reinterpret_cast<void* (*)(size_t, std::align_val_t, const std::nothrow_t&)>(dlsym(RTLD_NEXT, variant));
  return next ? next(n, al, std::nothrow) : nullptr;
}

bool valid_alignment(size_t align) { return align >= sizeof(void*) && (align & (align - 1)) == 0; }

}  // namespace

#define RSR_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// malloc's way when the fast path may not run: the guard's calls go to the private heap, the
// rest to the next allocator and the slow path.
[[gnu::noinline]] void* malloc_slowly(size_t n) {
  RSR_LAUNCHING_CALLS_GO_TO_ARENA(n);
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_malloc(n));
  return track(fn.malloc(n));
}

}  // namespace

// The fast byte is tested once, before the call: the fast path then needs no register of its
// own across the call.
RSR_EXPORT void* malloc(size_t n) {
  if (rsr::hot::t_state.fast != 1) [[unlikely]] return malloc_slowly(n);
  void* p = fn.malloc(n);
  if (p == nullptr) [[unlikely]] return p;
  return rsr::hot::on_alloc_fast(p);
}

RSR_EXPORT void free(void* p) { release(p); }

RSR_EXPORT void* calloc(size_t n, size_t size) {
  size_t total;
  if (!__builtin_mul_overflow(n, size, &total)) {
    RSR_LAUNCHING_CALLS_GO_TO_ARENA(total);
    RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_calloc(n, size));
  }
  return track(fn.calloc(n, size));
}

RSR_EXPORT void* realloc(void* p, size_t n) {
  if (p == nullptr) return malloc(n);
  if (rsr::hot::g_passthrough) return fn.realloc(p, n);
  if (rsr::real::is_bootstrap(p)) [[unlikely]] {
    void* q = malloc(n);
    if (q) {
      const size_t old = rsr::real::bootstrap_usable_size(p);
      __builtin_memcpy(q, p, old < n ? old : n);
    }
    return q;
  }
  if (is_private(p)) [[unlikely]] return rsr::hot::private_realloc(p, n);
  const size_t old = rsr::hot::next_usable_size(rsr::hot::t_state, p);
  rsr::hot::on_free(p);
  void* q = fn.realloc(p, n);
  if (q) track(q);
  else if (n != 0) rsr::hot::undo_free(old);
  return q;
}

RSR_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}

RSR_EXPORT int posix_memalign(void** out, size_t align, size_t n) {
  if (rsr::hot::t_state.fast != 1 && rsr::hot::route_private() && valid_alignment(align)) [[unlikely]] {
    if (void* q = rsr::hot::private_aligned(align, n)) {
      *out = q;
      return 0;
    }
  }
  const int rc = fn.posix_memalign(out, align, n);
  if (rc == 0) track(*out);
  return rc;
}

RSR_EXPORT void* aligned_alloc(size_t align, size_t n) {
  if (valid_alignment(align)) {
    RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(align, n));
  }
  return track(fn.aligned_alloc(align, n));
}

RSR_EXPORT void* memalign(size_t align, size_t n) {
  if (valid_alignment(align)) {
    RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(align, n));
  }
  return track(fn.memalign(align, n));
}

RSR_EXPORT void* valloc(size_t n) {
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(4096, n));
  return track(fn.valloc(n));
}

RSR_EXPORT void* pvalloc(size_t n) {
  RSR_GUARDED_CALLS_GO_PRIVATE(rsr::hot::private_aligned(4096, (n + 4095) & ~size_t{4095}));
  return track(fn.pvalloc(n));
}

RSR_EXPORT size_t malloc_usable_size(void* p) {
  if (p == nullptr) return 0;
  if (rsr::real::is_bootstrap(p)) [[unlikely]] return rsr::real::bootstrap_usable_size(p);
  if (is_private(p)) [[unlikely]] return rsr::hot::g_private.usable_size(p);
  return rsr::hot::next_usable_size(rsr::hot::t_state, p);
}

// operator new / delete, every variant of C++17.
#define RSR_NEW __attribute__((visibility("default")))
RSR_NEW void* operator new(size_t n) { return new_or_throw(n); }
RSR_NEW void* operator new[](size_t n) { return new_or_throw(n); }
RSR_NEW void* operator new(size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, "_ZnwmRKSt9nothrow_t"); }
RSR_NEW void* operator new[](size_t n, const std::nothrow_t&) noexcept { return new_nothrow(n, "_ZnamRKSt9nothrow_t"); }
RSR_NEW void* operator new(size_t n, std::align_val_t a) { return aligned_new_or_throw(n, a); }
RSR_NEW void* operator new[](size_t n, std::align_val_t a) { return aligned_new_or_throw(n, a); }
RSR_NEW void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new_nothrow(n, a, "_ZnwmSt11align_val_tRKSt9nothrow_t");
}
RSR_NEW void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new_nothrow(n, a, "_ZnamSt11align_val_tRKSt9nothrow_t");
}
RSR_NEW void operator delete(void* p) noexcept { release(p); }
RSR_NEW void operator delete[](void* p) noexcept { release(p); }
RSR_NEW void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
RSR_NEW void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
RSR_NEW void operator delete(void* p, size_t) noexcept { release(p); }
RSR_NEW void operator delete[](void* p, size_t) noexcept { release(p); }
RSR_NEW void operator delete(void* p, std::align_val_t) noexcept { release(p); }
RSR_NEW void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
RSR_NEW void operator delete(void* p, size_t, std::align_val_t) noexcept { release(p); }
RSR_NEW void operator delete[](void* p, size_t, std::align_val_t) noexcept { release(p); }
RSR_NEW void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
RSR_NEW void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
