// cfrac_like: the allocation pattern of cfrac (continued-fraction factoring, a classic allocator
// benchmark), written from its description rather than its code: single-threaded arithmetic on
// arbitrary-precision integers whose every result is a fresh heap block, so that a run is a
// stream of small, short-lived allocations of varying size (8..656 bytes) with a few hundred
// live at a time. One op = one multiply-add on two of 64 live numbers: the product, the sum and
// the truncated result are new blocks; the inputs it replaces are freed.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "bench_common.h"

namespace {

constexpr int kNumbers = 64;
constexpr uint32_t kMaxLimbs = 40;

struct Big {  // little-endian 64-bit limbs, allocated with the header
  uint32_t n;
  uint64_t limb[1];
};

Big* make(uint32_t n) {
  auto* b = static_cast<Big*>(std::malloc(sizeof(Big) + (n ? n - 1 : 0) * sizeof(uint64_t)));
  if (!b) std::abort();
  b->n = n;
  return b;
}

Big* multiply(const Big* a, const Big* b) {
  Big* r = make(a->n + b->n);
  std::memset(r->limb, 0, r->n * sizeof(uint64_t));
  for (uint32_t i = 0; i < a->n; ++i) {
    unsigned __int128 carry = 0;
    for (uint32_t j = 0; j < b->n; ++j) {
      carry += static_cast<unsigned __int128>(a->limb[i]) * b->limb[j] + r->limb[i + j];
      r->limb[i + j] = static_cast<uint64_t>(carry);
      carry >>= 64;
    }
    r->limb[i + b->n] = static_cast<uint64_t>(carry);
  }
  return r;
}

Big* add(const Big* a, const Big* b) {
  if (a->n < b->n) std::swap(a, b);
  Big* r = make(a->n + 1);
  unsigned __int128 carry = 0;
  for (uint32_t i = 0; i < a->n; ++i) {
    carry += static_cast<unsigned __int128>(a->limb[i]) + (i < b->n ? b->limb[i] : 0);
    r->limb[i] = static_cast<uint64_t>(carry);
    carry >>= 64;
  }
  r->limb[a->n] = static_cast<uint64_t>(carry);
  return r;
}

// The low `keep` limbs of `a` (at least one), without leading zero limbs, in a block of its own.
Big* truncate(const Big* a, uint32_t keep) {
  uint32_t n = a->n < keep ? a->n : keep;
  while (n > 1 && a->limb[n - 1] == 0) --n;
  Big* r = make(n);
  std::memcpy(r->limb, a->limb, n * sizeof(uint64_t));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args = bench::parse_args(argc, argv, 1'000'000);
  bench::warm_up();
  bench::Rng rng(args.seed);
  Big* x[kNumbers];
  for (Big*& b : x) {
    b = make(rng.range(1, 8));
    for (uint32_t i = 0; i < b->n; ++i) b->limb[i] = rng.next() | 1;
  }
  bench::Stopwatch clock;
  uint64_t checksum = 0;
  for (uint64_t op = 0; op < args.ops; ++op) {
    const int i = static_cast<int>(rng.range(0, kNumbers - 1));
    const int j = static_cast<int>(rng.range(0, kNumbers - 1));
    const int k = static_cast<int>(rng.range(0, kNumbers - 1));
    Big* product = multiply(x[i], x[j]);
    Big* sum = add(product, x[k]);
    std::free(product);
    Big* next = truncate(sum, rng.range(1, kMaxLimbs));
    std::free(sum);
    checksum += next->limb[0] + next->n;
    std::free(x[i]);
    x[i] = next;
  }
  const bench::Timing elapsed = clock.elapsed();
  for (Big* b : x) std::free(b);
  bench::report("cfrac_like", args.ops, "multiply_add", 1, elapsed, checksum);
  return 0;
}
