// pure_loop: malloc(32) + free, back to back, on one thread. It measures nothing but the cost of
// the allocation path, so (t_preload - t_plain) / ops is what the hooks add per pair (SPEC 9: at
// most 3 ns in the default sampled mode; glibc's tcache pair costs about 5.5 ns here).
#include <cstdlib>

#include "bench_common.h"

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 50'000'000);
  uint64_t checksum = 0;
  bench::warm_up();
  bench::Stopwatch clock;
  for (uint64_t i = 0; i < args.ops; ++i) {
    auto* p = static_cast<uint64_t*>(std::malloc(32));
    if (p == nullptr) std::abort();
    p[0] = i;
    bench::escape(p);  // keeps the pair: GCC deletes an unobserved malloc/free
    checksum += p[0];
    std::free(p);
  }
  const bench::Timing elapsed = clock.elapsed();
  bench::report("pure_loop", args.ops, "pair", 1, elapsed, checksum);
  return 0;
}
