// Programs with a known memory life, for the leak-detection lifecycle test (one per mode):
//
//   slow      builds a 64 MB index at start (build_index), churns on two threads (churn_worker:
//             blocks of 64 B..64 KiB freed within a millisecond), and leaks ~90 KiB/s into a
//             registry that is never pruned (leak_slowly: a 900-byte block every 10 ms)
//   fast      leaks ~4 MB/s (leak_fast: a 40 KiB block every 10 ms) beside the same churn
//   sawtooth  builds a 40 MB batch over ~6 s (build_batch: 4 KiB blocks), holds it half a second,
//             frees it all, and again: a 6.5 s cycle that never leaks
//   cache     a bounded cache of 16,384 x 4 KiB entries (cache_put) that fills in ~4 s and then
//             replaces 256 entries a second, evicting the oldest
//
// Usage: lifecycle MODE. stdout: "ready <pid>" at start, then one line per event the test times:
// "index_built", "cache_full", "cycle <n>". Runs until stdin closes, then frees what its
// containers hold (an orderly shutdown: an exit-time checker sees no leak) and exits 0. Every
// allocating function is noinline so it is a frame of its own (built with
// -fno-optimize-sibling-calls).
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<bool> g_stop{false};

void say(const char* line) {
  std::printf("%s\n", line);
  std::fflush(stdout);
}

// Sleeps until `next`, then moves it on by `step`.
void pace(Clock::time_point& next, std::chrono::microseconds step) {
  std::this_thread::sleep_until(next);
  next += step;
}

std::vector<char*> g_index;
__attribute__((noinline)) void build_index() {
  for (int i = 0; i < 16384; ++i) {
    char* node = static_cast<char*>(std::malloc(4096));
    std::memset(node, i, 4096);
    g_index.push_back(node);
  }
}

// Blocks of 64 B..64 KiB, each freed within a millisecond: ~30 MB/s per thread.
__attribute__((noinline)) void churn_worker(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<void*> held;
  auto next = Clock::now();
  while (!g_stop.load()) {
    for (int k = 0; k < 32; ++k) {
      const size_t size = size_t{64} << (rng() % 11);
      void* p = std::malloc(size);
      std::memset(p, k, size < 256 ? size : 256);
      held.push_back(p);
    }
    for (void* p : held) std::free(p);
    held.clear();
    pace(next, std::chrono::microseconds(1000));
  }
}

std::vector<void*> g_registry;
__attribute__((noinline)) void leak_slowly() {
  void* p = std::malloc(900);
  std::memset(p, 1, 900);
  g_registry.push_back(p);
}

__attribute__((noinline)) void leak_fast() {
  void* p = std::malloc(40 * 1024);
  std::memset(p, 2, 40 * 1024);
  g_registry.push_back(p);
}

__attribute__((noinline)) void build_batch(std::vector<void*>& batch) {
  void* p = std::malloc(4096);
  std::memset(p, 3, 4096);
  batch.push_back(p);
}

std::deque<void*> g_cache;
__attribute__((noinline)) void cache_put() {
  void* p = std::malloc(4096);
  std::memset(p, 4, 4096);
  g_cache.push_back(p);
  if (g_cache.size() > 16384) {
    std::free(g_cache.front());
    g_cache.pop_front();
  }
}

void run(const std::string& mode) {
  auto next = Clock::now();
  if (mode == "slow" || mode == "fast") {
    if (mode == "slow") {
      build_index();
      say("index_built");
    }
    std::thread a(churn_worker, 1), b(churn_worker, 2);
    while (!g_stop.load()) {
      if (mode == "slow") leak_slowly();
      else leak_fast();
      pace(next, std::chrono::microseconds(10000));
    }
    a.join();
    b.join();
  } else if (mode == "sawtooth") {
    std::vector<void*> batch;
    for (int cycle = 1; !g_stop.load(); ++cycle) {
      // 10,240 blocks over 6 s: 32 every 18.75 ms.
      for (int i = 0; i < 320 && !g_stop.load(); ++i) {
        for (int k = 0; k < 32; ++k) build_batch(batch);
        pace(next, std::chrono::microseconds(18750));
      }
      next += std::chrono::milliseconds(500);
      std::this_thread::sleep_until(next);
      for (void* p : batch) std::free(p);
      batch.clear();
      char line[32];
      std::snprintf(line, sizeof line, "cycle %d", cycle);
      say(line);
    }
    for (void* p : batch) std::free(p);
  } else if (mode == "cache") {
    bool full = false;
    while (!g_stop.load()) {
      // Filling: 64 entries every 16 ms (~16 MB/s); full: 4 every 16 ms (256/s).
      for (int k = 0; k < (full ? 4 : 64); ++k) cache_put();
      if (!full && g_cache.size() >= 16384) {
        full = true;
        say("cache_full");
      }
      pace(next, std::chrono::microseconds(15625));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: lifecycle slow|fast|sawtooth|cache\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode != "slow" && mode != "fast" && mode != "sawtooth" && mode != "cache") {
    std::fprintf(stderr, "lifecycle: unknown mode %s\n", mode.c_str());
    return 2;
  }
  char line[32];
  std::snprintf(line, sizeof line, "ready %d", static_cast<int>(getpid()));
  say(line);
  std::thread worker(run, mode);
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
  g_stop.store(true);
  worker.join();
  // An orderly shutdown, as a service's: its containers let go of what they hold.
  for (void* p : g_registry) std::free(p);
  for (char* p : g_index) std::free(p);
  for (void* p : g_cache) std::free(p);
  return 0;
}
