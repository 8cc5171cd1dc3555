// Statistical tests of the byte-interval sampler (preload/hot/sampler.h).
//
// The sampler seeds itself from the clock, so every run draws different numbers. Each statistical
// assertion compares an observed quantity with its exact expectation and allows 6 standard
// deviations (computed from the known variance of what is measured, not tuned to pass). For a
// normally distributed statistic the two-sided chance of a false failure is about 2e-9 per
// assertion; this file makes fewer than 100 such assertions, so a correct sampler fails a run
// with probability below 2e-7. Where the statistic is a count (binomial) the normal approximation
// is used only with at least a few thousand expected events. The integer discretisation of
// intervals (each draw is floor(x) + 1) adds at most one byte of bias; tolerances include it.
#include "sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace {

using rsr::hot::kBlockScale;
using rsr::hot::sample_weight;
using rsr::hot::sampler_next_interval;
using rsr::hot::sampler_redraw;
using rsr::hot::Countdown;
using rsr::hot::countdown_arm;
using rsr::hot::countdown_charge;
using rsr::hot::SamplerState;
using rsr::hot::SampleWeight;

constexpr double kSigmas = 6.0;

constexpr int32_t kFoldEvery = 64 * 1024;  // the peak's fold (engine.h, kPeakFlushBytes)

// A thread's sampler and the countdown its hooks run on (engine.h).
struct Thread {
  SamplerState s{};
  Countdown c{};
  uint64_t folds = 0;
};

// What the preload's hooks do for one allocation: the fast path's subtraction, then the slow
// path's charge, fold, sample and arming.
bool sample(Thread& t, uint64_t interval, size_t size) {
  if ((t.c.left -= static_cast<int64_t>(size)) >= 0) return false;
  if (countdown_charge(t.c, t.s, kFoldEvery)) ++t.folds;
  const bool taken = t.s.bytes_until_sample < 0 && sampler_redraw(t.s, interval, size);
  countdown_arm(t.c, t.s);
  return taken;
}

// The sampler on a counter of its own, as if it had no countdown to share.
bool sample_alone(SamplerState& s, uint64_t interval, size_t size) {
  s.bytes_until_sample -= static_cast<int64_t>(size);
  return s.bytes_until_sample < 0 && sampler_redraw(s, interval, size);
}

double p_sample(double size, double interval) { return -std::expm1(-size / interval); }

// Deterministic stream of test sizes (independent of the sampler's own generator).
struct Rng {
  uint64_t x;
  uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

// `interval` bounds the discretisation bias: an allocation right after a sample (a fraction p of
// them) meets a counter of floor(x) + 1 and is sampled with a probability at most 1/T lower.
void expect_binomial(uint64_t hits, uint64_t trials, double p, const char* what, double interval = 0) {
  const double mean = p * static_cast<double>(trials);
  const double sd = std::sqrt(static_cast<double>(trials) * p * (1 - p));
  const double slack = 1.0 + (interval > 0 ? mean / interval : 0.0);
  ASSERT_GT(mean, 1000.0) << "test design: too few expected events for the normal approximation";
  EXPECT_NEAR(static_cast<double>(hits), mean, kSigmas * sd + slack)
      << what << ": observed " << hits << " of " << trials << ", expected p=" << p << " (z="
      << (static_cast<double>(hits) - mean) / sd << ")";
}

// ---------------------------------------------------------------------------------------------
// Intervals

class SamplerIntervals : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SamplerIntervals, MeanAndVarianceMatchTheExponential) {
  const uint64_t T = GetParam();
  SamplerState s{};
  sampler_redraw(s, T, 0);  // seeds the generator
  constexpr int kN = 2000000;
  double sum = 0, sum_sq = 0;
  int64_t min = INT64_MAX;
  for (int i = 0; i < kN; ++i) {
    const int64_t x = sampler_next_interval(s, T);
    min = std::min(min, x);
    sum += static_cast<double>(x);
    sum_sq += static_cast<double>(x) * static_cast<double>(x);
  }
  const double Td = static_cast<double>(T);
  const double mean = sum / kN;
  // Exponential: sd = T, so the mean of kN draws has sd T/sqrt(kN).
  EXPECT_NEAR(mean, Td, kSigmas * Td / std::sqrt(kN) + 1.0) << "T=" << T;
  // Second moment: E[X^2] = 2T^2, Var[X^2] = 24T^4 - 4T^4 = 20T^4.
  const double m2 = sum_sq / kN;
  EXPECT_NEAR(m2 / (Td * Td), 2.0, kSigmas * std::sqrt(20.0 / kN) + 4.0 / Td) << "T=" << T;
  EXPECT_GE(min, 1) << "intervals are positive";
}

TEST_P(SamplerIntervals, QuantilesMatchTheExponential) {
  const uint64_t T = GetParam();
  SamplerState s{};
  sampler_redraw(s, T, 0);
  constexpr int kN = 1000000;
  const double qs[] = {0.05, 0.25, 0.5, 1.0, 2.0, 4.0};
  uint64_t below[6] = {};
  for (int i = 0; i < kN; ++i) {
    const double x = static_cast<double>(sampler_next_interval(s, T));
    for (int q = 0; q < 6; ++q)
      if (x <= qs[q] * static_cast<double>(T)) ++below[q];
  }
  for (int q = 0; q < 6; ++q) {
    const double p = 1 - std::exp(-qs[q]);
    // Discretisation moves each threshold by at most one byte.
    const double slack = static_cast<double>(kN) * (1.0 / static_cast<double>(T));
    const double sd = std::sqrt(kN * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(below[q]), kN * p, kSigmas * sd + slack)
        << "P(X <= " << qs[q] << "T), T=" << T;
  }
}

INSTANTIATE_TEST_SUITE_P(Means, SamplerIntervals,
                         ::testing::Values(64u, 4096u, 524288u, uint64_t{1} << 30));

// ---------------------------------------------------------------------------------------------
// Sampling probability of a fixed size: p(s) = 1 - exp(-s/T), each allocation independently.

struct FixedCase {
  uint64_t interval;
  size_t size;
  int trials;
};

class SamplerFixedSize : public ::testing::TestWithParam<FixedCase> {};

TEST_P(SamplerFixedSize, ProbabilityIsOneMinusExp) {
  const auto [T, size, trials] = GetParam();
  Thread s;
  uint64_t hits = 0;
  for (int i = 0; i < trials; ++i) hits += sample(s, T, size) ? 1 : 0;
  expect_binomial(hits, trials, p_sample(static_cast<double>(size), static_cast<double>(T)), "fixed size",
                  static_cast<double>(T));
}

INSTANTIATE_TEST_SUITE_P(Sizes, SamplerFixedSize,
                         ::testing::Values(FixedCase{524288, 8192, 1000000},     // p = 0.0155
                                           FixedCase{524288, 65536, 200000},     // p = 0.118
                                           FixedCase{524288, 524288, 100000},    // p = 0.632
                                           FixedCase{524288, 2097152, 100000},   // p = 0.982
                                           FixedCase{4096, 64, 1000000},         // p = 0.0155
                                           FixedCase{4096, 1, 40000000},         // p = 2.4e-4
                                           FixedCase{1024, 333, 200000}));       // p = 0.278

TEST(SamplerFixedSize, HugeAllocationIsAlmostAlwaysSampled) {
  Thread s;
  int hits = 0;
  for (int i = 0; i < 10000; ++i) hits += sample(s, 524288, 64u << 20) ? 1 : 0;  // p = 1 - e^-128
  EXPECT_EQ(hits, 10000);
}

// Between samples the counter must not get stuck sampling everything.
TEST(SamplerFixedSize, CounterIsPositiveAfterARedraw) {
  Thread s;
  for (int i = 0; i < 100000; ++i) {
    if (sample(s, 4096, 1000)) {
      ASSERT_GE(s.s.bytes_until_sample, 1);
      ASSERT_GE(s.c.left, 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The first allocation of a fresh (zero) state, as each new thread has: sampled with the same
// probability as any other, not always skipped and not always taken.

class SamplerFirstAllocation : public ::testing::TestWithParam<double> {};

TEST_P(SamplerFirstAllocation, IsSampledWithTheRightProbability) {
  const uint64_t T = 524288;
  const size_t size = static_cast<size_t>(GetParam() * T);
  constexpr int kStates = 200000;
  // Distinct addresses, as distinct threads have.
  auto states = std::make_unique<Thread[]>(kStates);
  uint64_t hits = 0;
  for (int i = 0; i < kStates; ++i) hits += sample(states[i], T, size) ? 1 : 0;
  expect_binomial(hits, kStates, p_sample(static_cast<double>(size), static_cast<double>(T)),
                  "first allocation of fresh states");
  // Every state was seeded and left with a usable counter.
  for (int i = 0; i < kStates; ++i) {
    ASSERT_NE(states[i].s.rng, 0u) << i;
    ASSERT_GE(states[i].s.bytes_until_sample, 0) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fractions, SamplerFirstAllocation, ::testing::Values(0.1, 0.25, 1.0, 3.0));

TEST(SamplerFirstAllocation, FreshStatesDrawIndependentIntervals) {
  // The counters that fresh states are left with, after one small allocation, follow the
  // exponential distribution across states: check the median and the mean.
  const uint64_t T = 524288;
  constexpr int kStates = 200000;
  auto states = std::make_unique<Thread[]>(kStates);
  uint64_t below_median = 0;
  double sum = 0;
  int sampled = 0;
  for (int i = 0; i < kStates; ++i) {
    if (sample(states[i], T, 1)) ++sampled;
    const double left = static_cast<double>(states[i].s.bytes_until_sample);
    sum += left;
    if (left <= std::log(2.0) * T) ++below_median;
  }
  EXPECT_LT(sampled, 10);  // p(1 byte) = 1.9e-6
  expect_binomial(below_median, kStates, 0.5, "fresh counters below the median");
  EXPECT_NEAR(sum / kStates, static_cast<double>(T), kSigmas * T / std::sqrt(kStates) + 2.0);
}

// ---------------------------------------------------------------------------------------------
// Horvitz-Thompson: summing sample_weight over the sampled allocations of a mixed stream
// estimates its total bytes and blocks without bias, also when the sampler's clock counts each
// block as its size plus a constant (as the preload does) and the weight is of its size. The variance of the estimate is known
// exactly: Var = sum over all allocations of w^2 * (1 - p) / p for w = size (bytes) or 1 (blocks).

struct Totals {
  double true_bytes = 0, true_blocks = 0;
  double est_bytes = 0, est_blocks = 0;
  double var_bytes = 0, var_blocks = 0;
  uint64_t samples = 0;

  void add(size_t size, double p, bool sampled, SampleWeight w) {
    const double sz = static_cast<double>(size);
    true_bytes += sz;
    true_blocks += 1;
    var_bytes += sz * sz * (1 - p) / p;
    var_blocks += (1 - p) / p;
    if (sampled) {
      ++samples;
      est_bytes += static_cast<double>(w.bytes);
      est_blocks += static_cast<double>(w.blocks_fp) / static_cast<double>(kBlockScale);
    }
  }
};

void expect_unbiased(const Totals& t, const char* what) {
  const double sd_b = std::sqrt(t.var_bytes), sd_n = std::sqrt(t.var_blocks);
  // Weights are rounded to integers: at most half a byte and half a 1/kBlockScale block each.
  const double round_b = 0.5 * static_cast<double>(t.samples);
  const double round_n = 0.5 * static_cast<double>(t.samples) / kBlockScale;
  EXPECT_NEAR(t.est_bytes, t.true_bytes, kSigmas * sd_b + round_b)
      << what << " bytes: z=" << (t.est_bytes - t.true_bytes) / sd_b << " samples=" << t.samples;
  EXPECT_NEAR(t.est_blocks, t.true_blocks, kSigmas * sd_n + round_n)
      << what << " blocks: z=" << (t.est_blocks - t.true_blocks) / sd_n << " samples=" << t.samples;
  // The design must give the test power: 6 sd has to be a modest fraction of the truth.
  EXPECT_LT(kSigmas * sd_b / t.true_bytes, 0.15) << what;
  EXPECT_LT(kSigmas * sd_n / t.true_blocks, 0.2) << what;
}

struct MixedCase {
  uint64_t interval;
  int allocations;
};

class SamplerUnbiased : public ::testing::TestWithParam<MixedCase> {};

TEST_P(SamplerUnbiased, HorvitzThompsonEstimatesOfAMixedStream) {
  const auto [T, n] = GetParam();
  Thread s;
  Rng rng{0x9E3779B97F4A7C15ULL ^ T};
  Totals all, small, medium, large;
  const double Td = static_cast<double>(T);
  for (int i = 0; i < n; ++i) {
    const uint64_t r = rng.next();
    const uint64_t cls = r % 1000;
    size_t size;
    Totals* bucket;
    if (cls < 989) {
      size = 16 + (r >> 10) % 241;  // 16..256 bytes: the bulk of real allocations
      bucket = &small;
    } else if (cls < 999) {
      size = 4096 + (r >> 10) % 61441;  // 4..64 KiB
      bucket = &medium;
    } else {
      size = (1u << 20) + (r >> 10) % (3u << 20);  // 1..4 MiB, larger than the interval
      bucket = &large;
    }
    if (T < 65536 && bucket == &large) size /= 64;  // keep the small-interval case fast
    // As the preload counts it: the sampler's clock runs on the usable size plus a word.
    const size_t counted = size + sizeof(size_t);
    const double p = p_sample(static_cast<double>(counted), Td);
    const bool taken = sample(s, T, counted);
    const SampleWeight w = taken ? sample_weight(size, counted, T) : SampleWeight{0, 0};
    all.add(size, p, taken, w);
    bucket->add(size, p, taken, w);
  }
  expect_unbiased(all, "all");
  expect_unbiased(small, "small");
  expect_unbiased(medium, "medium");
  expect_unbiased(large, "large");
}

INSTANTIATE_TEST_SUITE_P(Streams, SamplerUnbiased,
                         ::testing::Values(MixedCase{524288, 10000000}, MixedCase{4096, 2000000}));

// ---------------------------------------------------------------------------------------------
// Weights

TEST(SampleWeight, MatchesOneOverP) {
  const uint64_t T = 524288;
  for (size_t size : {1ul, 16ul, 100ul, 4096ul, 65536ul, 524288ul, 1048576ul, 10485760ul}) {
    const SampleWeight w = sample_weight(size, size, T);
    const double p = p_sample(static_cast<double>(size), static_cast<double>(T));
    EXPECT_NEAR(static_cast<double>(w.bytes), static_cast<double>(size) / p, 0.5 + 1e-9 * size / p) << size;
    const SampleWeight c = sample_weight(size, size + 8, T);  // counted as 8 more: sampled more often
    const double pc = p_sample(static_cast<double>(size + 8), static_cast<double>(T));
    EXPECT_NEAR(static_cast<double>(c.bytes), static_cast<double>(size) / pc, 0.5 + 1e-9 * size / pc) << size;
    EXPECT_NEAR(static_cast<double>(c.blocks_fp), kBlockScale / pc, 0.5 + 1e-9 * kBlockScale / pc) << size;
    EXPECT_NEAR(static_cast<double>(w.blocks_fp), kBlockScale / p, 0.5 + 1e-9 * kBlockScale / p) << size;
    EXPECT_GE(w.bytes, size) << "a sample stands for at least itself";
    EXPECT_GE(w.blocks_fp, kBlockScale);
  }
  // Far above the interval every allocation is sampled and stands for itself.
  const SampleWeight big = sample_weight(size_t{1} << 30, size_t{1} << 30, T);
  EXPECT_EQ(big.bytes, size_t{1} << 30);
  EXPECT_EQ(big.blocks_fp, kBlockScale);
}

TEST(SampleWeight, IsDeterministic) {
  // A free must subtract exactly what the allocation added: same inputs, same integers.
  for (size_t size = 1; size < 100000; size += 997)
    EXPECT_EQ(sample_weight(size, size, 524288).bytes, sample_weight(size, size, 524288).bytes);
}

// ---------------------------------------------------------------------------------------------
// Detailed tracking (interval 0): everything is a sample, of weight exactly itself.

TEST(SamplerDetailed, SamplesEveryAllocationWithWeightOne) {
  Thread s;
  Rng rng{12345};
  for (int i = 0; i < 100000; ++i) {
    const size_t size = 1 + rng.next() % ((i % 100 == 0) ? (64u << 20) : 512u);
    ASSERT_TRUE(sample(s, 0, size)) << "allocation " << i << " of " << size << " bytes";
    const SampleWeight w = sample_weight(size, size + 8, 0);
    ASSERT_EQ(w.bytes, size);
    ASSERT_EQ(w.blocks_fp, kBlockScale);
  }
}

TEST(SamplerDetailed, FreshStateSamplesItsFirstAllocation) {
  for (int i = 0; i < 1000; ++i) {
    Thread s;
    EXPECT_TRUE(sample(s, 0, 24));
  }
}

// ---------------------------------------------------------------------------------------------
// The countdown: the sampler and the peak's fold share it, and neither notices the other.

// From the same generator state, the sampler decides exactly as it would on a counter of its
// own, and the peak folds exactly every kFoldEvery bytes as it would on a counter of its own
// (the overshoot of the allocation that crosses it is not carried over).
TEST(Countdown, SamplesAndFoldsExactlyAsTwoCountersWould) {
  for (const uint64_t T : {uint64_t{0}, uint64_t{1024}, uint64_t{65536}, uint64_t{524288}, uint64_t{1} << 26}) {
    Thread t;
    sampler_redraw(t.s, T == 0 ? 1 : T, 0);  // seeds the generator
    t.s.bytes_until_sample = 0;
    SamplerState alone = t.s;
    int64_t fold_left = 0;
    uint64_t folds = 0, taken = 0;
    Rng rng{0x1234567ULL + T};
    for (int i = 0; i < 2000000; ++i) {
      const uint64_t r = rng.next();
      const size_t size = r % 100 == 0 ? 1 + (r >> 8) % (4u << 20) : 16 + (r >> 8) % 1024;
      const bool a = sample(t, T, size);
      const bool b = sample_alone(alone, T, size);
      ASSERT_EQ(a, b) << "allocation " << i << " of " << size << " bytes, interval " << T;
      taken += a ? 1 : 0;
      if ((fold_left -= static_cast<int64_t>(size)) < 0) {
        ++folds;
        fold_left = kFoldEvery;
      }
      ASSERT_EQ(t.folds, folds) << "allocation " << i << " of " << size << " bytes, interval " << T;
      ASSERT_GE(t.c.left, 0);
      ASSERT_LE(t.c.left, kFoldEvery);
    }
    EXPECT_GT(taken, 0u) << T;
  }
}

}  // namespace
