// Byte-interval sampler. May run inside malloc: allocates nothing, takes no lock.
//
// Theory. Think of the allocation stream as a line of bytes and mark each byte independently with
// rate 1/T (T = RSR_SAMPLE_INTERVAL_BYTES): the gaps between marks are exponentially distributed
// with mean T. An allocation is sampled when at least one of its bytes is marked, so an
// allocation of s bytes is sampled with probability
//
//     p(s) = 1 - exp(-s / T).
//
// Weighting a sampled allocation by 1/p(s) makes the per-site sums unbiased (Horvitz-Thompson):
// E[sum over sampled allocations of s/p(s)] = sum over all allocations of s, and likewise for
// counts with 1/p(s). Because the exponential distribution is memoryless, the counter can be
// redrawn from scratch after each sample instead of carrying the overshoot.
//
// Cost. The fast path is one subtraction and a sign test on a thread-local counter:
//     if ((state.bytes_until_sample -= s) >= 0) return false;
// Everything else (seeding, drawing, the weight) is out of line in sampler.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rsr::hot {

struct SamplerState {
  int64_t bytes_until_sample;  // 0 at thread start, so the first allocation takes the slow path
  uint64_t rng;                // xorshift64* state; 0 means "not seeded yet"
};

// Weight of one sampled allocation, as integers so that a free subtracts exactly what the
// allocation added. blocks_fp is the estimated block count scaled by kBlockScale.
struct SampleWeight {
  uint64_t bytes;
  uint64_t blocks_fp;
};
inline constexpr uint64_t kBlockScale = 1024;

// Fast path: true when this allocation of `size` bytes must be sampled.
[[gnu::always_inline]] inline bool sampler_take(SamplerState& s, size_t size) {
  s.bytes_until_sample -= static_cast<int64_t>(size);
  return s.bytes_until_sample < 0;
}

// Slow path, after sampler_take returned true for an allocation of `size` bytes. Redraws the
// interval and says whether the allocation is a sample. The first call of a thread seeds the
// generator and draws the thread's first interval, then decides as the fast path would have.
// `interval` is the mean in bytes; 0 means "sample everything" (detailed tracking).
bool sampler_redraw(SamplerState& s, uint64_t interval, size_t size);

// The unbiased weight of a sampled allocation of `size` bytes under mean interval `interval`.
SampleWeight sample_weight(size_t size, uint64_t interval);

// One exponential draw with mean `mean` (>= 1), from the thread's generator.
int64_t sampler_next_interval(SamplerState& s, uint64_t mean);

}  // namespace rsr::hot
