#include "private.h"

#include "tables.h"

namespace rsr::hot {

constinit PrivateHeap g_private;
std::atomic<bool> g_private_ready{false};
std::atomic<size_t> g_private_bytes{0};
std::atomic<size_t> g_private_blocks{0};

namespace {

void* enter(void* p) {
  if (!p) return nullptr;
  const size_t usable = g_private.usable_size(p);
  if (!block_insert(p, kPrivateSite, SampleWeight{usable, 0})) {
    g_private.free(p);  // untracked, it could not be told apart from the service's blocks
    return nullptr;
  }
  g_private_bytes.fetch_add(usable, std::memory_order_relaxed);
  g_private_blocks.fetch_add(1, std::memory_order_relaxed);
  return p;
}

}  // namespace

void* private_malloc(size_t n) { return enter(g_private.malloc(n)); }

void* private_calloc(size_t n, size_t size) { return enter(g_private.calloc(n, size)); }

void* private_aligned(size_t align, size_t n) { return enter(g_private.malloc_aligned(n, align)); }

void* private_realloc(void* p, size_t n) {
  const size_t old = g_private.usable_size(p);
  block_remove(p);
  void* q = g_private.realloc(p, n);
  if (!q) {  // p is untouched: track it again (the slot it left is free, so this succeeds)
    block_insert(p, kPrivateSite, SampleWeight{old, 0});
    return nullptr;
  }
  g_private_bytes.fetch_sub(old, std::memory_order_relaxed);
  g_private_blocks.fetch_sub(1, std::memory_order_relaxed);
  return enter(q);
}

void private_release(void* p) {
  g_private_bytes.fetch_sub(g_private.usable_size(p), std::memory_order_relaxed);
  g_private_blocks.fetch_sub(1, std::memory_order_relaxed);
  g_private.free(p);
}

}  // namespace rsr::hot
