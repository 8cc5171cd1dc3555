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
// Cost. The fast path is one subtraction and a sign test on a thread-local counter, shared with
// the peak's fold (engine.h, the countdown). Everything else (seeding, drawing, the weight) is
// out of line in sampler.cc.
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

// One countdown for two byte clocks (engine.h): the sampler's next mark and the peak's next fold.
// The fast path subtracts each allocation from `left` and tests its sign; when it goes below
// zero, countdown_charge() charges the bytes counted since the arming to both clocks (the peak's
// is set again when its fold is due), the caller samples if bytes_until_sample went below zero
// (sampler_redraw), and countdown_arm() arms it for the nearer of the two.
struct Countdown {
  int64_t left;       // the fast path's
  int32_t armed;      // `left` when armed: the nearer clock, at most `fold_every`
  int32_t peak_left;  // bytes before the peak's next fold, as of the arming
};

// True when the peak's fold is due (its clock is then set to `fold_every` again).
inline bool countdown_charge(Countdown& c, SamplerState& s, int32_t fold_every) {
  const int64_t used = c.armed - c.left;  // the allocation that ran it out included
  s.bytes_until_sample -= used;
  const int64_t peak = c.peak_left - used;
  c.peak_left = peak >= 0 ? static_cast<int32_t>(peak) : fold_every;
  return peak < 0;
}

inline void countdown_arm(Countdown& c, const SamplerState& s) {
  int64_t next = s.bytes_until_sample < c.peak_left ? s.bytes_until_sample : c.peak_left;
  if (next < 0) next = 0;
  c.armed = static_cast<int32_t>(next);
  c.left = next;
}

// Slow path, once bytes_until_sample went below zero with an allocation of `size` bytes (that
// allocation holds the mark). Redraws the interval and says whether the allocation is a sample.
// The first call of a thread seeds the generator and draws the thread's first interval, then
// decides as if that interval had been drawn before the allocation.
// `interval` is the mean in bytes; 0 means "sample everything" (detailed tracking).
bool sampler_redraw(SamplerState& s, uint64_t interval, size_t size);

// The unbiased weight of a sampled allocation of `usable` bytes that the sampler's clock counted
// as `size` bytes (its usable size and a constant: engine.h, counted), under mean interval
// `interval`: it was sampled with probability p(size), so it stands for usable / p(size) bytes
// and 1 / p(size) blocks.
SampleWeight sample_weight(size_t usable, size_t size, uint64_t interval);

// One exponential draw with mean `mean` (>= 1), from the thread's generator.
int64_t sampler_next_interval(SamplerState& s, uint64_t mean);

}  // namespace rsr::hot
