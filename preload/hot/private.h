// The engine's private heap (mimalloc, loaded privately by cold/private_libs.cc), and the
// routing of calls made with the guard held. May run inside malloc.
//
// Whatever allocates while a thread holds the guard (the engine's own threads, libunwind while it
// captures a stack, glibc inside thread registration) is served from the private heap, never
// from the service's. Each such block is entered in the block table under kPrivateSite, so the
// free, realloc and malloc_usable_size hooks recognise it with the same one-byte filter test
// that finds sampled blocks, wherever and whenever it is freed (libunwind's per-thread cache is
// freed when its thread exits, outside any guard). Until the heap and the tables are ready,
// guarded calls go to the next allocator like any other.
#pragma once

#include <atomic>
#include <cstddef>

#include "engine.h"

#pragma GCC visibility push(hidden)

namespace rsr::hot {

struct PrivateHeap {
  void* (*malloc)(size_t) = nullptr;
  void* (*calloc)(size_t, size_t) = nullptr;
  void* (*realloc)(void*, size_t) = nullptr;
  void* (*malloc_aligned)(size_t, size_t) = nullptr;
  void (*free)(void*) = nullptr;
  size_t (*usable_size)(const void*) = nullptr;
};
extern PrivateHeap g_private;
// Set once the heap is loaded (the control thread does it, cold/lifecycle.cc) and the block table
// mapped; until then guarded calls go to the next allocator like any other.
extern std::atomic<bool> g_private_ready;
extern std::atomic<size_t> g_private_bytes;   // usable bytes the engine holds there
extern std::atomic<size_t> g_private_blocks;  // its blocks, which also sit in the block table

// True when this call (whose thread is off the fast path) must be served privately.
[[gnu::always_inline]] inline bool route_private() { return t_state.guard > 0 && g_private_ready.load(std::memory_order_acquire); }

// Each returns null when the block cannot be served or tracked; the caller then forwards to the
// next allocator as usual.
void* private_malloc(size_t n);
void* private_calloc(size_t n, size_t size);
void* private_aligned(size_t align, size_t n);
// For a block known to be private (block_find said so).
void* private_realloc(void* p, size_t n);
// Hands a private block (already removed from the table) back to the private heap.
void private_release(void* p);

}  // namespace rsr::hot

#pragma GCC visibility pop
