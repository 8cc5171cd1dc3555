#include "tables.h"

#include "engine.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace rsr::hot {

constinit Tables g_tables;
RSR_LARGE_BSS std::atomic<uint8_t> g_filter[size_t{1} << kFilterBits];

struct Block {
  std::atomic<uintptr_t> ptr;  // 0 empty, 1 tombstone
  uint32_t site;
  uint32_t born_ds;  // coarse_ds() at the sample
  uint64_t bytes;
  uint64_t blocks_fp;
};
static_assert(sizeof(Block) == 32);

namespace {

constexpr uintptr_t kEmpty = 0, kTombstone = 1;
constexpr uint64_t kPoolFramesPerSite = 32;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t pow2_at_least(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

void* map(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

size_t resident(const void* start, size_t bytes) {
  if (!start || bytes == 0) return 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = (bytes + page - 1) / page;
  unsigned char vec[4096];
  size_t count = 0;
  for (size_t first = 0; first < pages; first += sizeof vec) {
    const size_t n = pages - first < sizeof vec ? pages - first : sizeof vec;
    if (mincore(const_cast<char*>(static_cast<const char*>(start)) + first * page, n * page, vec) != 0)
      return bytes;  // cannot tell: count it all
    for (size_t i = 0; i < n; ++i) count += vec[i] & 1;
  }
  return count * page;
}

}  // namespace

bool tables_init(uint64_t max_sites, uint64_t max_blocks, int depth) {
  Tables& t = g_tables;
  const uint64_t site_slots = pow2_at_least(max_sites * 2);
  const uint64_t block_slots = pow2_at_least(max_blocks * 2);
  const uint64_t frames = max_sites * (depth < static_cast<int>(kPoolFramesPerSite) ? depth : kPoolFramesPerSite);
  t.site_list_cap = max_sites + 2 * kMaxProbe;  // site_count is checked before the insert races
  // One reservation for the four tables (one system call and one mapping), each page-aligned.
  constexpr size_t kPage = 4096;
  const auto pages = [](size_t bytes) { return (bytes + kPage - 1) & ~(kPage - 1); };
  const size_t sites_bytes = pages(site_slots * sizeof(Site));
  const size_t list_bytes = pages(t.site_list_cap * sizeof(uint32_t));
  const size_t pool_bytes = pages(frames * sizeof(uintptr_t));
  char* const base = static_cast<char*>(map(sites_bytes + list_bytes + pool_bytes + block_slots * sizeof(Block)));
  if (!base) return false;
  t.sites = reinterpret_cast<Site*>(base);
  t.site_list = reinterpret_cast<std::atomic<uint32_t>*>(base + sites_bytes);
  t.pool = reinterpret_cast<uintptr_t*>(base + sites_bytes + list_bytes);
  t.blocks = reinterpret_cast<Block*>(base + sites_bytes + list_bytes + pool_bytes);
  t.filter = g_filter;
  t.site_mask = site_slots - 1;
  t.max_sites = max_sites;
  t.pool_cap = frames;
  t.block_mask = block_slots - 1;
  t.max_blocks = max_blocks;
  t.mapped_bytes = site_slots * sizeof(Site) + t.site_list_cap * sizeof(uint32_t) + frames * sizeof(uintptr_t) +
                   block_slots * sizeof(Block) + (size_t{1} << kFilterBits);
  return true;
}

uint32_t site_intern(const uintptr_t* frames, int n) {
  Tables& t = g_tables;
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = mix(h ^ frames[i]);
  if (h == 0) h = 1;
  uint64_t i = h & t.site_mask;
  for (int probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & t.site_mask) {
    Site& s = t.sites[i];
    uint64_t k = s.hash.load(std::memory_order_acquire);
    if (k == h) return static_cast<uint32_t>(i);
    if (k != 0) continue;
    if (t.site_count.load(std::memory_order_relaxed) >= t.max_sites) break;
    const uint64_t at = t.pool_used.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    if (at + static_cast<uint64_t>(n) > t.pool_cap) break;
    if (!s.hash.compare_exchange_strong(k, h, std::memory_order_acq_rel)) {
      if (k == h) return static_cast<uint32_t>(i);  // another thread added the same site
      continue;                                      // pool frames are wasted; rare
    }
    std::memcpy(t.pool + at, frames, static_cast<size_t>(n) * sizeof(uintptr_t));
    s.frames_at = at;
    s.depth = static_cast<uint32_t>(n);
    s.ready.store(1, std::memory_order_release);
    t.site_count.fetch_add(1, std::memory_order_relaxed);
    const uint64_t at_list = t.site_listed.fetch_add(1, std::memory_order_acq_rel);
    if (at_list < t.site_list_cap) t.site_list[at_list].store(static_cast<uint32_t>(i) + 1, std::memory_order_release);
    return static_cast<uint32_t>(i);
  }
  t.dropped_sites.fetch_add(1, std::memory_order_relaxed);
  return kNoSite;
}

Site& site_at(uint32_t index) { return index == kNoSite ? g_tables.overflow : g_tables.sites[index]; }

bool block_insert(void* p, uint32_t site, SampleWeight w) {
  Tables& t = g_tables;
  if (t.block_count.load(std::memory_order_relaxed) >= t.max_blocks) return false;
  const uintptr_t key = reinterpret_cast<uintptr_t>(p);
  uint64_t i = mix(key) & t.block_mask;
  for (int probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & t.block_mask) {
    Block& b = t.blocks[i];
    // Only writes (a failed cmpxchg writes too): a page of the table touched first by a load
    // maps the zero page, and the store after it faults again and flushes every CPU's TLB.
    // The fields are written before the key is published; a free of `p` cannot race with
    // this insert because malloc has not returned `p` yet.
    uintptr_t k = kEmpty;
    if (!b.ptr.compare_exchange_strong(k, key, std::memory_order_acq_rel) &&
        (k != kTombstone || !b.ptr.compare_exchange_strong(k, key, std::memory_order_acq_rel)))
      continue;
    b.site = site;
    b.born_ds = site == kPrivateSite ? 0 : coarse_ds();
    b.bytes = w.bytes;
    b.blocks_fp = w.blocks_fp;
    t.block_count.fetch_add(1, std::memory_order_relaxed);
    std::atomic<uint8_t>& f = t.filter[filter_index(p)];
    uint8_t c = f.load(std::memory_order_relaxed);
    while (c != 255 && !f.compare_exchange_weak(c, static_cast<uint8_t>(c + 1), std::memory_order_relaxed)) {
    }
    return true;
  }
  return false;
}

namespace {

// The slot holding `p`, or null.
Block* block_slot(const void* p) {
  Tables& t = g_tables;
  const uintptr_t key = reinterpret_cast<uintptr_t>(p);
  uint64_t i = mix(key) & t.block_mask;
  for (int probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & t.block_mask) {
    Block& b = t.blocks[i];
    const uintptr_t k = b.ptr.load(std::memory_order_acquire);
    if (k == kEmpty) return nullptr;
    if (k == key) return &b;
  }
  return nullptr;
}

}  // namespace

Tracked block_find(const void* p) {
  if (!g_tables.blocks) return Tracked::kNo;
  const Block* b = block_slot(p);
  if (!b) return Tracked::kNo;
  return b->site == kPrivateSite ? Tracked::kPrivate : Tracked::kSampled;
}

Tracked block_remove(void* p) {
  Tables& t = g_tables;
  if (!t.blocks) return Tracked::kNo;
  Block* b = block_slot(p);
  if (!b) return Tracked::kNo;
  const bool is_private = b->site == kPrivateSite;
  if (!is_private) {
    Site& s = site_at(b->site);
    s.live_bytes.fetch_sub(static_cast<int64_t>(b->bytes), std::memory_order_relaxed);
    s.live_blocks_fp.fetch_sub(static_cast<int64_t>(b->blocks_fp), std::memory_order_relaxed);
    s.live_samples.fetch_sub(1, std::memory_order_relaxed);
    if (coarse_ds() - b->born_ds >= g_durable_ds.load(std::memory_order_relaxed))
      s.durable_deaths.fetch_add(1, std::memory_order_relaxed);
  }
  b->ptr.store(kTombstone, std::memory_order_release);
  t.block_count.fetch_sub(1, std::memory_order_relaxed);
  std::atomic<uint8_t>& f = t.filter[filter_index(p)];
  uint8_t c = f.load(std::memory_order_relaxed);
  while (c != 255 && c != 0 &&
         !f.compare_exchange_weak(c, static_cast<uint8_t>(c - 1), std::memory_order_relaxed)) {
  }
  return is_private ? Tracked::kPrivate : Tracked::kSampled;
}

std::atomic<uint32_t> g_durable_ds{10};

uint32_t coarse_ds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint32_t>(static_cast<uint64_t>(ts.tv_sec) * 10 + static_cast<uint64_t>(ts.tv_nsec) / 100000000);
}

void blocks_each(void (*fn)(uint32_t, uint32_t, void*), void* ctx) {
  const Tables& t = g_tables;
  if (!t.blocks) return;
  for (uint64_t i = 0; i <= t.block_mask; ++i) {
    const Block& b = t.blocks[i];
    const uintptr_t k = b.ptr.load(std::memory_order_acquire);
    if (k == kEmpty || k == kTombstone || b.site == kPrivateSite || b.site >= t.site_mask + 1) continue;
    fn(b.site, b.born_ds, ctx);
  }
}

size_t tables_resident_bytes() {
  const Tables& t = g_tables;
  return resident(t.sites, (t.site_mask + 1) * sizeof(Site)) +
         resident(t.site_list, t.site_list_cap * sizeof(uint32_t)) +
         resident(t.pool, t.pool_cap * sizeof(uintptr_t)) +
         resident(t.blocks, (t.block_mask + 1) * sizeof(Block)) +
         resident(t.filter, size_t{1} << kFilterBits);
}

}  // namespace rsr::hot
