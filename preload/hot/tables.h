// Lock-free tables of sampled data. May run inside malloc.
//
// - Sites: call sites keyed by a 64-bit hash of their stack, open addressing, never removed.
//   A site's stack lives in an append-only frame pool. Per-site figures are unbiased estimates
//   (see sampler.h) kept in relaxed atomics.
// - Blocks: the sampled blocks still live, keyed by address (open addressing with tombstones),
//   each remembering its site and the exact weight it added, so its free subtracts the same.
// - Filter: a counting filter over block addresses, so a free learns "certainly not sampled"
//   from one byte load; only a possible hit looks into the block table.
// Probing is bounded (kMaxProbe); a sample that finds no room is dropped and counted.
//
// The tables are mapped once at start-up (lazily committed by the kernel) and never resized;
// their sizes come from RSR_MAX_SITES and RSR_MAX_TRACKED_BLOCKS.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sampler.h"

namespace rsr::hot {

inline constexpr uint32_t kNoSite = UINT32_MAX;         // overflow bucket: sites beyond the cap
inline constexpr uint32_t kPrivateSite = UINT32_MAX - 1;  // a block of the engine's private heap
inline constexpr int kMaxProbe = 64;
inline constexpr int kMaxDepth = 256;

struct Site {
  std::atomic<uint64_t> hash;   // 0: empty slot
  std::atomic<uint32_t> ready;  // 1 once frames and depth are written
  uint32_t depth;
  uint64_t frames_at;           // index into the frame pool
  std::atomic<int64_t> live_bytes;
  std::atomic<int64_t> live_blocks_fp;
  std::atomic<int64_t> live_samples;
  std::atomic<uint64_t> alloc_bytes;
  std::atomic<uint64_t> alloc_blocks_fp;
  std::atomic<uint64_t> samples;
  std::atomic<uint64_t> durable_deaths;  // sampled blocks freed at least g_durable_ds after birth
  int64_t baseline_live_bytes;  // growth baseline, written by the control thread only
  int64_t baseline_time_ms;
};

struct Tables {
  Site* sites = nullptr;
  // Every site's index + 1, in the order they were added, so the cold side visits the sites that
  // exist without touching (and faulting in) the whole open-addressing table.
  std::atomic<uint32_t>* site_list = nullptr;
  uint64_t site_list_cap = 0;
  std::atomic<uint64_t> site_listed{0};
  uint64_t site_mask = 0;
  uint64_t max_sites = 0;
  uintptr_t* pool = nullptr;
  uint64_t pool_cap = 0;
  struct Block* blocks = nullptr;
  uint64_t block_mask = 0;
  uint64_t max_blocks = 0;
  std::atomic<uint8_t>* filter = nullptr;
  size_t mapped_bytes = 0;

  std::atomic<uint64_t> pool_used{0};
  std::atomic<uint64_t> site_count{0};
  std::atomic<uint64_t> block_count{0};
  std::atomic<uint64_t> dropped_samples{0};
  std::atomic<uint64_t> dropped_sites{0};
  Site overflow{};  // estimates of samples whose site could not be interned
};
extern Tables g_tables;

// Sampled blocks remember their birth in coarse monotonic tenths of a second (block ages for leak
// detection). A sampled block freed this long after its birth or later counts as a durable death
// of its site: churn that lives shorter than the leak detector's probes does not (leaks.cc).
uint32_t coarse_ds();
extern std::atomic<uint32_t> g_durable_ds;

// Maps the tables. Called once by the start-up code before the engine turns active.
bool tables_init(uint64_t max_sites, uint64_t max_blocks, int depth);

// Finds or adds the site of `frames[0..n)`. Returns its index or kNoSite.
uint32_t site_intern(const uintptr_t* frames, int n);
Site& site_at(uint32_t index);
// Number of site slots: the size of arrays indexed by site (cold side).
inline uint64_t site_slots() { return g_tables.site_mask + 1; }
// Calls fn(index) for every site added so far (cold side).
template <class F>
void each_site(F fn) {
  const Tables& t = g_tables;
  if (!t.sites) return;
  const uint64_t listed = t.site_listed.load(std::memory_order_acquire);
  const uint64_t n = listed < t.site_list_cap ? listed : t.site_list_cap;
  for (uint64_t k = 0; k < n; ++k) {
    const uint32_t at = t.site_list[k].load(std::memory_order_acquire);
    if (at != 0) fn(at - 1);  // 0: being added
  }
}

// Samples taken so far: each counts on its site, those without one on the overflow bucket
// (cold side: summed when asked, so a sample takes no shared counter for it).
inline uint64_t samples_taken() {
  uint64_t n = g_tables.overflow.samples.load(std::memory_order_relaxed);
  each_site([&](uint32_t i) { n += site_at(i).samples.load(std::memory_order_relaxed); });
  return n;
}

bool block_insert(void* p, uint32_t site, SampleWeight w);

enum class Tracked { kNo, kSampled, kPrivate };
// Removes `p` if it is a tracked block (a sampled block's weight leaves its site) and says what
// it was.
Tracked block_remove(void* p);
// Every sampled live block: its site and birth (coarse_ds), for block ages (cold side; racy reads
// of blocks being freed are possible and harmless).
void blocks_each(void (*fn)(uint32_t site, uint32_t born_ds, void* ctx), void* ctx);
// What `p` is, without removing it.
Tracked block_find(const void* p);

// Resident bytes of the tables (pages touched), for the tracker-overhead figure.
size_t tables_resident_bytes();

}  // namespace rsr::hot
