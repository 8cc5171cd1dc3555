// realloc_growth: buffers that grow, the way builders, logs and parsers grow theirs. One op = one
// round of three patterns:
//  - a vector of std::string, every string appended to in small pieces (libstdc++ grows both by
//    doubling through operator new/delete, copying the contents);
//  - a buffer grown by realloc, doubling from 16 bytes to 64 KiB;
//  - a buffer grown by realloc in small random steps (8..64 bytes) up to 4 KiB, where glibc
//    mostly extends in place.
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_common.h"

namespace {

uint64_t strings_round(bench::Rng& rng) {
  std::vector<std::string> lines;
  const unsigned n = rng.range(8, 24);
  for (unsigned i = 0; i < n; ++i) {
    lines.emplace_back("line:");
    std::string& s = lines.back();
    const unsigned pieces = rng.range(4, 24);
    for (unsigned k = 0; k < pieces; ++k) {
      s.append(rng.range(4, 40), static_cast<char>('a' + k % 26));
    }
  }
  uint64_t sum = lines.size();
  for (const std::string& s : lines) sum += s.size() + static_cast<unsigned char>(s.back());
  return sum;
}

unsigned char* grow(unsigned char* p, size_t size) {
  auto* q = static_cast<unsigned char*>(std::realloc(p, size));
  if (q == nullptr) std::abort();
  q[size - 1] = static_cast<unsigned char>(size);
  return q;
}

uint64_t doubling_round() {
  auto* p = static_cast<unsigned char*>(std::malloc(16));
  if (p == nullptr) std::abort();
  p[0] = 1;
  size_t size = 16;
  while (size < 64 * 1024) {
    size *= 2;
    p = grow(p, size);
  }
  const uint64_t sum = p[0] + p[size / 2 - 1] + p[size - 1];
  std::free(p);
  return sum;
}

uint64_t incremental_round(bench::Rng& rng) {
  unsigned char* p = nullptr;
  size_t size = 0;
  uint64_t sum = 0;
  while (size < 4096) {
    size += rng.range(8, 64);
    p = grow(p, size);
    sum += p[size - 1];
  }
  std::free(p);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 200'000);
  bench::Rng rng(args.seed);
  uint64_t checksum = 0;
  bench::warm_up();
  bench::Stopwatch clock;
  for (uint64_t i = 0; i < args.ops; ++i) {
    checksum += strings_round(rng);
    checksum += doubling_round();
    checksum += incremental_round(rng);
  }
  const bench::Timing elapsed = clock.elapsed();
  bench::report("realloc_growth", args.ops, "round", 1, elapsed, checksum);
  return 0;
}
