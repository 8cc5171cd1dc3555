// many_sites: the control-operations program (SPEC 9: "answer in milliseconds with 10,000 live
// call sites and never stall the service's threads").
//
// At start it reaches 2^14 = 16384 distinct call stacks (a binary tree of calls: every level
// calls one of two functions, each from its own call instruction) and keeps one 64 KiB block
// from each leaf, so with RSR_SAMPLE_INTERVAL_BYTES=4096 every leaf is a live call site. Then it
// prints `READY sites=16384` and a worker thread runs small malloc/free pairs in batches of
// 20,000, writing one line per batch to stdout:
//
//   B <start, CLOCK_MONOTONIC ns> <duration ns>
//
// so the caller can tell how long the worker's batches took while it queried the process, against
// while it did not. Runs for --seconds S (default 20) or until SIGTERM, then prints
// `RESULT name=many_sites batches=N`.
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include "bench_common.h"

namespace {

constexpr int kDepth = 14;
constexpr size_t kLeafBytes = 64 * 1024;
constexpr int kBatch = 20000;

void* g_blocks[1 << kDepth];
volatile unsigned g_sink;
std::atomic<bool> g_stop{false};

__attribute__((noinline)) void leaf(unsigned id) {
  g_blocks[id] = std::malloc(kLeafBytes);
  bench::escape(g_blocks[id]);
}

// Level D of the tree; Side tells the two functions of a level apart, so the two calls below
// have return addresses of their own and every path from the root is a stack of its own.
template <int D, int Side>
__attribute__((noipa)) void walk(unsigned path, unsigned id) {
  if constexpr (D == 0) {
    leaf(id);
  } else {
    if (path & (1u << (D - 1))) walk<D - 1, 1>(path, id);
    else walk<D - 1, 0>(path, id);
    g_sink = g_sink + 1 + Side;  // not a tail call: this frame stays on the stack
  }
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void worker() {
  bench::Rng rng(7);
  char line[64];
  while (!g_stop.load(std::memory_order_relaxed)) {
    const uint64_t start = now_ns();
    for (int i = 0; i < kBatch; ++i) {
      void* p = std::malloc(rng.range(16, 256));
      bench::escape(p);
      std::free(p);
    }
    const int n = std::snprintf(line, sizeof line, "B %llu %llu\n", static_cast<unsigned long long>(start),
                                static_cast<unsigned long long>(now_ns() - start));
    std::fwrite(line, 1, static_cast<size_t>(n), stdout);
  }
}

void on_term(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  double seconds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
  }
  std::signal(SIGTERM, on_term);
  for (unsigned path = 0; path < (1u << kDepth); ++path) walk<kDepth, 0>(path, path);
  std::printf("READY sites=%u\n", 1u << kDepth);
  std::fflush(stdout);
  std::thread t(worker);
  const uint64_t end = now_ns() + static_cast<uint64_t>(seconds * 1e9);
  while (!g_stop.load() && now_ns() < end) {
    timespec ts{0, 20 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  g_stop.store(true);
  t.join();
  for (void* p : g_blocks) std::free(p);
  std::printf("RESULT name=many_sites sink=%u\n", g_sink);
  return 0;
}
