// mstress: a stress test in the manner of mimalloc-bench's, written from its description: each of
// --threads (4) threads keeps a set of 500 live blocks of widely spread sizes (16 B..64 KiB, most
// small), replaces them at random, and now and then swaps a batch of its blocks with a shared
// pool, so that a thread frees blocks of every size and age that other threads allocated. One op
// = one allocation plus one free.
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr size_t kLive = 500;
constexpr size_t kPool = 4000;

struct Pool {
  std::mutex mutex;
  std::vector<void*> blocks = std::vector<void*>(kPool, nullptr);
};

uint32_t spread_size(bench::Rng& rng) {
  const uint32_t r = rng.range(0, 99);
  if (r < 80) return rng.range(16, 256);
  if (r < 97) return rng.range(257, 4096);
  return rng.range(4097, 65536);
}

void worker(Pool& pool, uint64_t seed, uint64_t ops, uint64_t* checksum) {
  bench::Rng rng(seed);
  std::vector<void*> live(kLive, nullptr);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < ops; ++i) {
    const size_t at = rng.range(0, kLive - 1);
    std::free(live[at]);  // a block of any thread's, any age
    const uint32_t size = spread_size(rng);
    sum += size;  // what this thread allocated: the same whatever the interleaving
    auto* p = static_cast<uint32_t*>(std::malloc(size));
    if (!p) std::abort();
    p[0] = size;
    bench::escape(p);
    live[at] = p;
    if (i % 256 == 255) {  // swap 32 blocks with the shared pool
      std::lock_guard<std::mutex> lock(pool.mutex);
      for (int k = 0; k < 32; ++k) {
        const size_t mine = rng.range(0, kLive - 1), theirs = rng.range(0, kPool - 1);
        std::swap(live[mine], pool.blocks[theirs]);
      }
    }
  }
  for (void* p : live) std::free(p);
  *checksum = sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 2'000'000, 4);
  bench::warm_up();
  Pool pool;
  std::vector<uint64_t> sums(args.threads);
  bench::Stopwatch clock;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < args.threads; ++t)
    threads.emplace_back(worker, std::ref(pool), args.seed * 1000003 + t, args.ops / args.threads, &sums[t]);
  for (auto& th : threads) th.join();
  uint64_t checksum = 0;
  for (uint64_t s : sums) checksum += s;
  for (void* p : pool.blocks) std::free(p);
  const bench::Timing elapsed = clock.elapsed();
  bench::report("mstress", args.ops / args.threads * args.threads, "alloc_free", args.threads, elapsed, checksum);
  return 0;
}
