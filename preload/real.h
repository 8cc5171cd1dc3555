// The next allocator's entry points (glibc's, or whatever allocator the program brought), found
// with dlsym(RTLD_NEXT). May run inside malloc.
//
// Until resolution finishes, calls land in a static bootstrap arena: dlsym itself may call
// calloc, and constructors of libraries loaded before us may allocate before our constructor
// runs. Bootstrap blocks are never returned to the next allocator; free() recognises them by
// address and ignores them.
#pragma once

#include <cstddef>

namespace rsr::real {

struct Table {
  void* (*malloc)(size_t);
  void (*free)(void*);
  void* (*calloc)(size_t, size_t);
  void* (*realloc)(void*, size_t);
  void* (*reallocarray)(void*, size_t, size_t);
  int (*posix_memalign)(void**, size_t, size_t);
  void* (*aligned_alloc)(size_t, size_t);
  void* (*memalign)(size_t, size_t);
  void* (*valloc)(size_t);
  void* (*pvalloc)(size_t);
  size_t (*malloc_usable_size)(void*);
};

// Starts as trampolines that resolve the table on first use; afterwards points at the next
// allocator. Read on every call: one load.
extern Table fn;

// Resolves every entry now (idempotent). False when a mandatory entry is missing.
bool resolve();

bool is_bootstrap(const void* p);
size_t bootstrap_usable_size(const void* p);

}  // namespace rsr::real
