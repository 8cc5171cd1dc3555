// mt_churn: T threads (default 4) in a ring; each allocates small blocks (malloc and operator
// new, 16..256 bytes) and hands them over a single-producer/single-consumer queue to the next
// thread, which frees them. Every free is a cross-thread free, the pattern of pipelines and
// thread pools, and the one that stresses per-thread caches and the free-side lookup of sampled
// blocks. One op = one allocation plus its (remote) free.
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

// Lock-free single-producer/single-consumer ring of block pointers. The producer publishes in
// batches (flush), so the queue's own cache lines move between cores once per batch, not once per
// block: what the benchmark measures is the allocator, not the queue.
class Ring {
 public:
  bool push(void* p) {
    if (local_tail_ - head_cache_ == kCapacity) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (local_tail_ - head_cache_ == kCapacity) {
        flush();
        return false;
      }
    }
    slots_[local_tail_ & (kCapacity - 1)] = p;
    if (++local_tail_ % kBatch == 0) flush();
    return true;
  }
  void flush() { tail_.store(local_tail_, std::memory_order_release); }
  void* pop() {
    const uint64_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (h == tail_cache_) return nullptr;
    }
    void* p = slots_[h & (kCapacity - 1)];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  // Deep enough that a thread seldom waits for a neighbour that is not scheduled (4 threads share
  // 2 cores): with a shallow ring the figures measure the scheduler more than the allocator.
  static constexpr uint64_t kCapacity = 4096;
  static constexpr uint64_t kBatch = 32;
  alignas(64) std::atomic<uint64_t> head_{0};  // consumer side
  uint64_t tail_cache_ = 0;
  alignas(64) std::atomic<uint64_t> tail_{0};  // producer side
  uint64_t local_tail_ = 0;
  uint64_t head_cache_ = 0;
  alignas(64) void* slots_[kCapacity];
};

// A block carries what its consumer needs to free it: size and allocation function.
struct Header {
  uint32_t size;
  uint32_t by_new;
  uint64_t value;
};

void* make_block(bench::Rng& rng) {
  const uint32_t size = rng.range(16, 256);
  const bool by_new = (rng.next() & 1) != 0;
  void* p = by_new ? ::operator new(size) : std::malloc(size);
  if (p == nullptr) std::abort();
  auto* h = static_cast<Header*>(p);
  h->size = size;
  h->by_new = by_new;
  h->value = rng.next() >> 40;
  return p;
}

uint64_t free_block(void* p) {
  const Header h = *static_cast<Header*>(p);
  if (h.by_new) ::operator delete(p, h.size);
  else std::free(p);
  return h.value + h.size;
}

// Arrived blocks are freed in bursts, as a consumer handling a batch of messages would.
constexpr uint64_t kDrainEvery = 32;

uint64_t quota(uint64_t ops, unsigned threads, unsigned t) {
  return ops / threads + (t < ops % threads ? 1 : 0);
}

struct Shared {
  std::vector<std::unique_ptr<Ring>> rings;  // rings[t]: from thread t to thread t+1
  std::atomic<bool> go{false};
  std::atomic<uint64_t> checksum{0};
};

void worker(Shared& sh, const bench::Args& args, unsigned t) {
  const unsigned n = args.threads;
  Ring& out = *sh.rings[t];
  Ring& in = *sh.rings[(t + n - 1) % n];
  const uint64_t to_make = quota(args.ops, n, t);
  const uint64_t to_free = quota(args.ops, n, (t + n - 1) % n);
  bench::Rng rng(args.seed * 1000 + t);
  uint64_t made = 0, freed = 0, sum = 0;

  // Frees up to `max` blocks that arrived; returns how many.
  auto drain = [&](int max) {
    int k = 0;
    for (; k < max; ++k) {
      void* p = in.pop();
      if (p == nullptr) break;
      sum += free_block(p);
    }
    freed += k;
    return k;
  };

  while (!sh.go.load(std::memory_order_acquire)) std::this_thread::yield();
  while (made < to_make || freed < to_free) {
    int progress = 0;
    if (made < to_make) {
      void* p = make_block(rng);
      while (!out.push(p)) {
        if (drain(64) == 0) std::this_thread::yield();  // 4 threads share 2 cores: never spin
      }
      ++made;
      ++progress;
      if (made == to_make) out.flush();
    }
    if (made % kDrainEvery == 0 || made == to_make) progress += drain(2 * kDrainEvery);
    if (progress == 0) std::this_thread::yield();
  }
  sh.checksum.fetch_add(sum, std::memory_order_relaxed);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 5'000'000, 4);
  Shared sh;
  for (unsigned t = 0; t < args.threads; ++t) sh.rings.push_back(std::make_unique<Ring>());
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < args.threads; ++t) {
    threads.emplace_back(worker, std::ref(sh), std::cref(args), t);
  }

  bench::warm_up();
  bench::Stopwatch clock;
  sh.go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  const bench::Timing elapsed = clock.elapsed();
  bench::report("mt_churn", args.ops, "alloc_remote_free", args.threads, elapsed,
                sh.checksum.load());
  return 0;
}
