// Many threads churning allocations, with cross-thread frees through producer/consumer queues and
// short-lived threads that exit while their blocks are still alive elsewhere (and free blocks in
// their thread_local and pthread-key destructors). Prints a transcript that does not depend on
// scheduling, so it must match the run without the preload.
#include <malloc.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kProducers = 16;
constexpr int kConsumers = 16;
constexpr int kItemsPerProducer = 12000;
constexpr int kWaves = 8;
constexpr int kEphemeralPerWave = 16;

enum class How : uint8_t { kMalloc, kCalloc, kNewArray, kNewAligned, kPosixMemalign, kRealloc };

struct Block {
  void* p;
  uint32_t size;
  uint32_t seed;
  How how;
};

uint8_t byte_at(uint32_t seed, uint32_t i) { return static_cast<uint8_t>(seed * 2654435761u + i * 97u); }

Block make_block(uint32_t seed, uint32_t size, How how) {
  void* p = nullptr;
  switch (how) {
    case How::kMalloc: p = malloc(size); break;
    case How::kCalloc: p = calloc(1, size); break;
    case How::kNewArray: p = new char[size]; break;
    case How::kNewAligned: p = ::operator new(size, std::align_val_t(64)); break;
    case How::kPosixMemalign:
      if (posix_memalign(&p, 128, size) != 0) p = nullptr;
      break;
    case How::kRealloc: p = realloc(malloc(size / 2 + 1), size); break;
  }
  if (!p) abort();
  auto* b = static_cast<uint8_t*>(p);
  for (uint32_t i = 0; i < size; ++i) b[i] = byte_at(seed, i);
  return {p, size, seed, how};
}

// Verifies the pattern, sometimes reallocates (from another thread than the allocating one),
// and frees with the matching function. Returns a checksum of the contents.
uint64_t consume(Block b, bool do_realloc) {
  auto* p = static_cast<uint8_t*>(b.p);
  uint64_t sum = 0;
  for (uint32_t i = 0; i < b.size; ++i) {
    if (p[i] != byte_at(b.seed, i)) {
      fprintf(stderr, "corrupted block seed %u at %u\n", b.seed, i);
      abort();
    }
    sum += p[i];
  }
  switch (b.how) {
    case How::kMalloc:
    case How::kCalloc:
    case How::kRealloc:
    case How::kPosixMemalign:
      if (do_realloc) {
        p = static_cast<uint8_t*>(realloc(p, b.size * 2 + 64));
        if (!p) abort();
        for (uint32_t i = 0; i < b.size; ++i)
          if (p[i] != byte_at(b.seed, i)) abort();
      }
      free(p);
      break;
    case How::kNewArray: delete[] reinterpret_cast<char*>(p); break;
    case How::kNewAligned: ::operator delete(p, std::align_val_t(64)); break;
  }
  return sum;
}

struct Queue {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Block> items;
  int producers_left = 0;

  void push(Block b) {
    {
      std::lock_guard<std::mutex> g(m);
      items.push_back(b);
    }
    cv.notify_one();
  }
  bool pop(Block* out) {
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return !items.empty() || producers_left == 0; });
    if (items.empty()) return false;
    *out = items.front();
    items.pop_front();
    return true;
  }
  void producer_done() {
    {
      std::lock_guard<std::mutex> g(m);
      --producers_left;
    }
    cv.notify_all();
  }
};

Queue g_queues[kConsumers];
std::atomic<uint64_t> g_produced_sum{0}, g_consumed_sum{0}, g_consumed{0};

uint64_t block_sum(const Block& b) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < b.size; ++i) s += byte_at(b.seed, i);
  return s;
}

void producer(int id) {
  uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(id + 1), sum = 0;
  for (int i = 0; i < kItemsPerProducer; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint32_t size = 1 + static_cast<uint32_t>(x % (i % 500 == 0 ? 200000 : 600));
    const auto how = static_cast<How>(x % 6);
    Block b = make_block(static_cast<uint32_t>(id * kItemsPerProducer + i), size, how);
    sum += block_sum(b);
    // Some local churn that never leaves the thread.
    void* t = malloc(size % 128 + 1);
    free(t);
    g_queues[(id + i) % kConsumers].push(b);
  }
  g_produced_sum += sum;
  for (auto& q : g_queues) q.producer_done();
}

void consumer(int id) {
  Block b;
  uint64_t n = 0, sum = 0;
  while (g_queues[id].pop(&b)) {
    sum += consume(b, (n++ % 3) == 0);
  }
  g_consumed += n;
  g_consumed_sum += sum;
}

// Short-lived threads: allocate blocks that outlive them (freed by the main thread), free blocks
// allocated by their predecessors, and free memory in thread-exit destructors.
std::mutex g_handoff_mutex;
std::vector<Block> g_handoff;
pthread_key_t g_key;

struct ExitCleanup {
  std::vector<void*> blocks;
  ~ExitCleanup() {
    for (void* p : blocks) free(p);
    void* last = malloc(333);  // allocation during thread teardown
    free(last);
  }
};
thread_local ExitCleanup t_cleanup;

void ephemeral(int wave, int id) {
  std::vector<Block> mine;
  for (int i = 0; i < 200; ++i)
    mine.push_back(make_block(static_cast<uint32_t>(1000000 + wave * 10000 + id * 200 + i),
                              static_cast<uint32_t>(16 + (i * 37) % 900), static_cast<How>(i % 6)));
  for (int i = 0; i < 50; ++i) t_cleanup.blocks.push_back(malloc(static_cast<size_t>(8 + i)));
  pthread_setspecific(g_key, malloc(4096));
  std::vector<Block> theirs;
  {
    std::lock_guard<std::mutex> g(g_handoff_mutex);
    theirs.swap(g_handoff);
    g_handoff = std::move(mine);
  }
  uint64_t sum = 0;
  for (const Block& b : theirs) sum += consume(b, false);
  g_consumed_sum += sum;
  g_consumed += theirs.size();
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  pthread_key_create(&g_key, [](void* p) { free(p); });
  for (auto& q : g_queues) q.producers_left = kProducers;

  std::vector<std::thread> long_lived;
  for (int i = 0; i < kConsumers; ++i) long_lived.emplace_back(consumer, i);
  for (int i = 0; i < kProducers; ++i) long_lived.emplace_back(producer, i);

  // Waves of short-lived threads while the producers and consumers run.
  uint64_t handoff_expected = 0;
  for (int w = 0; w < kWaves; ++w) {
    std::vector<std::thread> wave;
    for (int i = 0; i < kEphemeralPerWave; ++i) wave.emplace_back(ephemeral, w, i);
    for (auto& t : wave) t.join();
  }
  for (auto& t : long_lived) t.join();
  {
    std::lock_guard<std::mutex> g(g_handoff_mutex);
    handoff_expected = g_handoff.size();
    uint64_t sum = 0;
    for (const Block& b : g_handoff) sum += consume(b, true);
    g_consumed_sum += sum;
    g_consumed += g_handoff.size();
    g_handoff.clear();
  }

  const uint64_t produced = uint64_t{kProducers} * kItemsPerProducer + uint64_t{kWaves} * kEphemeralPerWave * 200;
  printf("threads: %d long-lived, %d short-lived\n", kProducers + kConsumers, kWaves * kEphemeralPerWave);
  printf("blocks produced %llu consumed %llu (last handoff %llu)\n", static_cast<unsigned long long>(produced),
         static_cast<unsigned long long>(g_consumed.load()), static_cast<unsigned long long>(handoff_expected));
  printf("producer checksum %llu\n", static_cast<unsigned long long>(g_produced_sum.load()));
  const bool ok = g_consumed.load() == produced;
  printf("%s\n", ok ? "ok all blocks consumed" : "FAIL blocks lost");
  return ok ? 0 : 1;
}
