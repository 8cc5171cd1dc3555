// small_churn: one thread keeps a working set of live small objects (16..512 bytes, through
// malloc, new[] and sized operator new) and replaces random ones, so frees hit blocks of every
// age and size class, as in a long-running service's caches and queues. One op = one free plus
// one allocation of a random victim slot.
#include <cstdlib>
#include <memory>
#include <new>

#include "bench_common.h"

namespace {

constexpr size_t kWorkingSet = 100'000;

enum class Kind : uint8_t { Malloc, NewArray, OperatorNew };

struct Slot {
  unsigned char* p = nullptr;
  uint32_t size = 0;
  Kind kind = Kind::Malloc;
};

void fill(Slot& s, bench::Rng& rng) {
  s.size = rng.range(16, 512);
  s.kind = static_cast<Kind>(rng.range(0, 2));
  switch (s.kind) {
    case Kind::Malloc:
      s.p = static_cast<unsigned char*>(std::malloc(s.size));
      if (s.p == nullptr) std::abort();
      break;
    case Kind::NewArray: s.p = new unsigned char[s.size]; break;
    case Kind::OperatorNew: s.p = static_cast<unsigned char*>(::operator new(s.size)); break;
  }
  // Touch both ends, as a constructor would.
  std::memset(s.p, static_cast<int>(s.size), 8);
  std::memset(s.p + s.size - 8, static_cast<int>(s.size >> 1), 8);
}

uint64_t release(Slot& s) {
  uint64_t seen = static_cast<uint64_t>(s.p[0]) + s.p[s.size - 1] + s.size;
  switch (s.kind) {
    case Kind::Malloc: std::free(s.p); break;
    case Kind::NewArray: delete[] s.p; break;
    case Kind::OperatorNew: ::operator delete(s.p, s.size); break;
  }
  s.p = nullptr;
  return seen;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 5'000'000);
  bench::Rng rng(args.seed);
  auto slots = std::make_unique<Slot[]>(kWorkingSet);
  for (size_t i = 0; i < kWorkingSet; ++i) fill(slots[i], rng);

  uint64_t checksum = 0;
  bench::warm_up();
  bench::Stopwatch clock;
  for (uint64_t i = 0; i < args.ops; ++i) {
    Slot& s = slots[rng.range(0, kWorkingSet - 1)];
    checksum += release(s);
    fill(s, rng);
  }
  const bench::Timing elapsed = clock.elapsed();

  for (size_t i = 0; i < kWorkingSet; ++i) checksum += release(slots[i]);
  bench::report("small_churn", args.ops, "replace", 1, elapsed, checksum);
  return 0;
}
