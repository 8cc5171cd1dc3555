// larson: the classic server-allocator benchmark (Larson and Krishnan), written from its
// description: each of --threads (4) threads owns an array of 1,000 slots of 16..512-byte blocks
// and, in rounds, frees a random slot's block and allocates a new one there. Every 10,000 ops a
// thread hands its whole array to a new thread and exits, so blocks are freed by threads that did
// not allocate them, long after, as in a server whose worker threads come and go. One op = one
// free plus one allocation.
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr size_t kSlots = 1000;
constexpr uint64_t kOpsPerGeneration = 10000;

struct Lineage {
  std::vector<void*> slots;
  uint64_t checksum = 0;
};

void generation(Lineage& l, uint64_t seed, uint64_t ops) {
  bench::Rng rng(seed);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < ops; ++i) {
    const size_t at = rng.range(0, kSlots - 1);
    if (l.slots[at]) {
      sum += *static_cast<uint32_t*>(l.slots[at]);
      std::free(l.slots[at]);
    }
    const uint32_t size = rng.range(16, 512);
    auto* p = static_cast<uint32_t*>(std::malloc(size));
    if (!p) std::abort();
    p[0] = size;
    bench::escape(p);
    l.slots[at] = p;
  }
  l.checksum += sum;
}

void lineage(Lineage& l, uint64_t seed, uint64_t ops) {
  for (uint64_t gen = 0, done = 0; done < ops; ++gen) {
    const uint64_t n = ops - done < kOpsPerGeneration ? ops - done : kOpsPerGeneration;
    std::thread t(generation, std::ref(l), seed * 7919 + gen, n);  // the next generation takes over
    t.join();
    done += n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 2'000'000, 4);
  bench::warm_up();
  std::vector<Lineage> lines(args.threads);
  for (Lineage& l : lines) l.slots.assign(kSlots, nullptr);
  bench::Stopwatch clock;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < args.threads; ++t)
    threads.emplace_back(lineage, std::ref(lines[t]), args.seed * 1000003 + t, args.ops / args.threads);
  for (auto& th : threads) th.join();
  uint64_t checksum = 0;
  for (Lineage& l : lines) {
    checksum += l.checksum;
    for (void* p : l.slots) std::free(p);
  }
  const bench::Timing elapsed = clock.elapsed();
  bench::report("larson", args.ops / args.threads * args.threads, "free_alloc", args.threads, elapsed, checksum);
  return 0;
}
