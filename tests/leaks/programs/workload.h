// Building blocks of the service-like leak-test programs (service.cc, steady.cc): a bounded LRU
// cache, request-like temporaries, allocation churn on threads, and a pacer. None of them leaks.
//
// The functions the tests look for in sampled stacks (cache_lookup, handle_request, churn_worker)
// are noinline, so each is a frame of its own whatever the optimisation level, and the programs
// are built with -fno-optimize-sibling-calls so no allocation call becomes a tail call that
// would drop its caller's frame.
//
// Why the churn is shaped as it is. The library judges a *level*: the lowest of the last five
// probes (probes every interval/20, at least 0.1 s; common/protocol.md, check_leaks). Temporary
// memory is supposed to vanish under that minimum, so the churn is "temporary" in that sense:
//   - request-sized batches (8..48 blocks of 16 B..2 KiB, at most 96 KiB) live for microseconds
//     and are freed before the thread sleeps, so a probe almost never sees one, and even two
//     threads' worst case (192 KiB) stays under RSR_LEAK_MIN_SITE_BYTES as the tests set it;
//   - bursts of 2..8 MiB (blocks of 64 KiB..1 MiB, every page touched) are held 10..30 ms every
//     150..400 ms (random, so they cannot phase-lock with the probes): a thread is inside a
//     burst ~7% of the time, both threads' bursts cover ~14%, and five probes 0.1 s apart (each
//     burst can cover at most one of them) all land inside bursts with odds ~0.14^5 = 5e-5 per
//     level. That is the only way the churn could show as growth.
#pragma once

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wl {

using Clock = std::chrono::steady_clock;

// A bounded LRU cache of fixed-size values. Lookups insert on a miss and evict the least recently
// used entry beyond capacity, so once full its memory stays flat while its entries turn over.
struct LruCache {
  struct Entry {
    uint64_t key;
    std::vector<char> value;
  };
  LruCache(size_t capacity, size_t value_bytes) : capacity(capacity), value_bytes(value_bytes) {
    index.reserve(capacity * 2);  // the bucket array is allocated here, never rehashed later
  }
  bool full() const { return order.size() >= capacity; }

  size_t capacity, value_bytes;
  std::list<Entry> order;  // front: most recently used
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index;
  uint64_t hits = 0, misses = 0;
};

// Every cache allocation (list node, value buffer, hash node) has this frame in its stack.
__attribute__((noinline)) static bool cache_lookup(LruCache& c, uint64_t key) {
  auto it = c.index.find(key);
  if (it != c.index.end()) {
    c.order.splice(c.order.begin(), c.order, it->second);
    ++c.hits;
    return true;
  }
  ++c.misses;
  c.order.push_front(LruCache::Entry{key, std::vector<char>(c.value_bytes, static_cast<char>(key))});
  c.index.emplace(key, c.order.begin());
  if (c.order.size() > c.capacity) {
    c.index.erase(c.order.back().key);
    c.order.pop_back();
  }
  return false;
}

// Keys for a cache: new keys while it fills, then mostly recently inserted ones (hits) and a
// `miss_ratio` share of new ones, so a full cache turns over slowly, as real caches do.
struct KeyStream {
  explicit KeyStream(uint64_t seed, double miss_ratio) : rng(seed), miss_ratio(miss_ratio) {}
  uint64_t next(const LruCache& c) {
    if (!c.full() || std::uniform_real_distribution<double>(0, 1)(rng) < miss_ratio) return next_key++;
    const uint64_t window = c.capacity * 9 / 10;
    return next_key - 1 - rng() % window;
  }
  std::mt19937_64 rng;
  double miss_ratio;
  uint64_t next_key = 0;
};

// A request: parse a header line into tokens, consult the cache, build a reply. Everything it
// allocates is freed before it returns.
__attribute__((noinline)) static size_t handle_request(LruCache& c, KeyStream& keys, std::mt19937& rng) {
  const uint64_t key = keys.next(c);
  std::string request = "GET /item/" + std::to_string(key) + " HTTP/1.1";
  const int headers = 4 + static_cast<int>(rng() % 12);
  for (int i = 0; i < headers; ++i) request += "\r\nX-Header-" + std::to_string(i) + ": " + std::string(8 + rng() % 120, 'v');
  std::vector<std::string> tokens;
  size_t start = 0;
  for (size_t i = 0; i <= request.size(); ++i) {
    if (i == request.size() || request[i] == ' ' || request[i] == '\n') {
      tokens.emplace_back(request, start, i - start);
      start = i + 1;
    }
  }
  const bool hit = cache_lookup(c, key);
  std::string reply = hit ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 200 OK (miss)\r\n";
  reply.append(c.value_bytes, 'r');
  for (const auto& t : tokens) reply += t;
  return reply.size() + tokens.size();
}

// Allocation churn on a thread until `stop`: request-sized batches freed at once, and short-held
// multi-megabyte bursts (see the top of this file for why they are shaped so).
__attribute__((noinline)) static void churn_worker(const std::atomic<bool>* stop, unsigned seed) {
  std::mt19937 rng(seed);
  auto uniform = [&](uint32_t lo, uint32_t hi) { return lo + static_cast<uint32_t>(rng() % (hi - lo + 1)); };
  auto next_burst = Clock::now() + std::chrono::milliseconds(uniform(150, 400));
  void* batch[48];
  std::vector<void*> burst;
  burst.reserve(256);
  volatile size_t sink = 0;
  while (!stop->load(std::memory_order_relaxed)) {
    // Request-sized temporaries: alternate C and C++ allocation APIs, as mixed code bases do.
    const uint32_t n = uniform(8, 48);
    for (uint32_t i = 0; i < n; ++i) {
      const size_t size = uniform(16, 2048);
      batch[i] = (i & 1) ? static_cast<void*>(new char[size]) : malloc(size);
      static_cast<char*>(batch[i])[0] = static_cast<char>(i);
      sink = sink + static_cast<char*>(batch[i])[0];
    }
    for (uint32_t i = 0; i < n; ++i) {
      if (i & 1) delete[] static_cast<char*>(batch[i]);
      else free(batch[i]);
    }
    if (Clock::now() >= next_burst) {
      const size_t target = size_t{uniform(2, 8)} << 20;
      size_t held = 0;
      while (held < target) {
        const size_t size = size_t{uniform(1, 16)} << 16;  // 64 KiB .. 1 MiB
        char* p = static_cast<char*>(malloc(size));
        for (size_t off = 0; off < size; off += 4096) p[off] = 1;  // resident, as real buffers are
        burst.push_back(p);
        held += size;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(uniform(10, 30)));
      for (void* p : burst) free(p);
      burst.clear();
      next_burst = Clock::now() + std::chrono::milliseconds(uniform(150, 400));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  (void)sink;
}

// Calls `step` as many times as `per_second` asks for, in 1 ms ticks, until `done()` says so.
// Each tick also runs `tick()` (used to poll stdin).
struct Pacer {
  Clock::time_point start = Clock::now();
  uint64_t done_steps = 0;
  // Steps due now at `per_second` since start.
  uint64_t due(double per_second) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const auto target = static_cast<uint64_t>(elapsed * per_second);
    const uint64_t n = target > done_steps ? target - done_steps : 0;
    done_steps += n;
    return n;
  }
};

// One line on stdout, flushed at once (the test reads lines as they come).
inline void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace wl
