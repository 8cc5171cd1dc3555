// thread_storm: threads created in waves (default 32 per wave) that each allocate blocks of
// 16..1024 bytes, put them in a list shared by the wave under a mutex, and free blocks that other
// threads of the wave put there, then exit; the next wave starts. It stresses what short-lived
// threads cost the library (registration on the first allocation, the fold of a thread's counters
// at its exit) and cross-thread frees under a lock, as thread-per-task servers do. One op = one
// allocation plus its free (by another thread, mostly).
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr uint64_t kPerThread = 2000;  // allocations of each thread of a wave

struct Wave {
  std::mutex mutex;
  std::vector<void*> shared;  // blocks put down by any thread, freed by any other
  uint64_t checksum = 0;
};

void member(Wave& w, uint64_t seed, uint64_t allocations) {
  bench::Rng rng(seed);
  uint64_t sum = 0;
  std::vector<void*> mine;
  mine.reserve(16);
  for (uint64_t i = 0; i < allocations; ++i) {
    const uint32_t size = rng.range(16, 1024);
    auto* p = static_cast<uint64_t*>(std::malloc(size));
    if (p == nullptr) std::abort();
    p[0] = size;
    bench::escape(p);
    mine.push_back(p);
    if (mine.size() == 16) {  // hand 16 over, take up to 16 of the others' and free them
      std::lock_guard<std::mutex> lock(w.mutex);
      const size_t take = w.shared.size() < 16 ? w.shared.size() : 16;
      for (size_t k = 0; k < take; ++k) {
        void* q = w.shared.back();
        w.shared.pop_back();
        sum += *static_cast<uint64_t*>(q);
        std::free(q);
      }
      w.shared.insert(w.shared.end(), mine.begin(), mine.end());
      mine.clear();
    }
  }
  std::lock_guard<std::mutex> lock(w.mutex);
  w.shared.insert(w.shared.end(), mine.begin(), mine.end());
  w.checksum += sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 2'000'000, 32);
  bench::warm_up();
  bench::Stopwatch clock;
  uint64_t done = 0, checksum = 0;
  for (uint64_t wave = 0; done < args.ops; ++wave) {
    Wave w;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < args.threads && done < args.ops; ++t) {
      const uint64_t n = args.ops - done < kPerThread ? args.ops - done : kPerThread;
      done += n;
      threads.emplace_back(member, std::ref(w), args.seed * 1000003 + wave * 1000 + t, n);
    }
    for (auto& th : threads) th.join();
    for (void* q : w.shared) {
      checksum += *static_cast<uint64_t*>(q);
      std::free(q);
    }
    checksum += w.checksum;
  }
  const bench::Timing elapsed = clock.elapsed();
  bench::report("thread_storm", args.ops, "alloc_shared_free", args.threads, elapsed, checksum);
  return 0;
}
