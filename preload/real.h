// The next allocator's entry points (glibc's, or whatever allocator the program brought), found
// with dlsym(RTLD_NEXT). May run inside malloc.
//
// Until resolution finishes, calls land in a static bootstrap arena: dlsym itself may call
// calloc, and constructors of libraries loaded before us may allocate before our constructor
// runs. Bootstrap blocks are never returned to the next allocator; free() recognises them by
// address and ignores them.
#pragma once

#include <cstddef>
#include <cstdint>

#pragma GCC visibility push(hidden)

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

inline constexpr size_t kArenaBytes = 1 << 20;
extern char g_arena[kArenaBytes];

[[gnu::always_inline]] inline bool is_bootstrap(const void* p) {
  return reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(g_arena) < kArenaBytes;
}
size_t bootstrap_usable_size(const void* p);
// A zeroed block of the bootstrap arena (never freed), null when it is full.
void* arena_malloc(size_t n);

// True when the next allocator is glibc's malloc, whose chunk header gives a block's usable size
// directly (what its malloc_usable_size computes, without the call).
extern bool g_glibc_chunks;

// Set when the process's `malloc` is not this library's (an allocator earlier in LD_PRELOAD, or
// one linked into the executable): the object that owns it. The table then points at that
// allocator, so blocks stay with one allocator, but most calls bypass the hooks.
extern const char* g_shadowed_by;
inline constexpr const char* kShadowedByProgram = "the program itself";

// A live glibc block's chunk header (the word before it). Only valid when g_glibc_chunks.
[[gnu::always_inline]] inline size_t glibc_chunk_header(const void* p) { return static_cast<const size_t*>(p)[-1]; }
// Bit 1 (IS_MMAPPED): such chunks (each its own mapping, 128 KiB and up by default) carry a
// two-word header; the others share the next chunk's first word.
inline constexpr size_t kChunkMmapped = 2;
// The size of a chunk that is not mmapped, from its header: its usable size plus one word. The
// fast paths test the bit and leave mmapped chunks to the slow path.
[[gnu::always_inline]] inline size_t glibc_heap_chunk(size_t header) { return header & ~size_t{7}; }
[[gnu::always_inline]] inline size_t glibc_heap_usable(size_t header) { return glibc_heap_chunk(header) - sizeof(size_t); }
// Usable size of any live glibc block, from its chunk header: what glibc's malloc_usable_size
// returns, without the call.
[[gnu::always_inline]] inline size_t glibc_usable_size(const void* p) {
  const size_t header = glibc_chunk_header(p);
  return glibc_heap_usable(header) - ((header & kChunkMmapped) << 2);  // << 2: that extra 8
}

}  // namespace rsr::real

#pragma GCC visibility pop
