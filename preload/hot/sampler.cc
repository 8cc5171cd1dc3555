#include "sampler.h"

#include <ctime>

#include "../../common/math.h"

namespace rsr::hot {
namespace {

uint64_t next_u64(uint64_t& x) {  // xorshift64*: fast, good enough for interval draws
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  return x * 0x2545F4914F6CDD1DULL;
}

void seed(SamplerState& s) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 32) ^
               reinterpret_cast<uintptr_t>(&s);  // &s is per thread
  x ^= 0x9E3779B97F4A7C15ULL;
  s.rng = x ? x : 1;
  for (int i = 0; i < 4; ++i) next_u64(s.rng);
}

}  // namespace

int64_t sampler_next_interval(SamplerState& s, uint64_t mean) {
  // Uniform in (0, 1] from the top 53 bits, then inverse-CDF of the exponential distribution.
  const double u = (static_cast<double>(next_u64(s.rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  const double x = -math::log(u) * static_cast<double>(mean);
  if (x >= 9.0e18) return INT64_MAX / 2;
  return static_cast<int64_t>(x) + 1;
}

bool sampler_redraw(SamplerState& s, uint64_t interval, size_t size) {
  if (interval == 0) {
    s.bytes_until_sample = 0;  // detailed tracking: every allocation is a sample
    return true;
  }
  if (s.rng == 0) {
    seed(s);
    s.bytes_until_sample = sampler_next_interval(s, interval) - static_cast<int64_t>(size);
    if (s.bytes_until_sample >= 0) return false;
  }
  s.bytes_until_sample = sampler_next_interval(s, interval);
  return true;
}

SampleWeight sample_weight(size_t usable, size_t size, uint64_t interval) {
  if (interval == 0 || size == 0) return {usable, kBlockScale};
  const double p = -math::expm1(-static_cast<double>(size) / static_cast<double>(interval));
  if (!(p > 0.0)) return {usable, kBlockScale};
  return {static_cast<uint64_t>(math::round_to_int(static_cast<double>(usable) / p)),
          static_cast<uint64_t>(math::round_to_int(static_cast<double>(kBlockScale) / p))};
}

}  // namespace rsr::hot
