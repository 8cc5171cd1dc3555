// common/math.h against libm, over the ranges the library uses and beyond.
#include "math.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace {

// Error of `got` relative to `want`, or to `floor` where |want| is smaller (near a zero of the
// function, relative error means nothing).
double rel_error(double got, double want, double floor = 1e-300) {
  return std::fabs(got - want) / std::max(std::fabs(want), floor);
}

template <class Ours, class Libm>
void sweep(const char* name, Ours ours, Libm libm, double lo, double hi, int steps, double tolerance,
           bool log_spaced = false, double floor = 1e-300) {
  double worst = 0, worst_at = lo;
  for (int i = 0; i <= steps; ++i) {
    const double f = static_cast<double>(i) / steps;
    const double x = log_spaced ? lo * std::pow(hi / lo, f) : lo + (hi - lo) * f;
    const double e = rel_error(ours(x), libm(x), floor);
    if (e > worst) {
      worst = e;
      worst_at = x;
    }
  }
  EXPECT_LE(worst, tolerance) << name << " worst at x=" << worst_at;
}

TEST(Math, LogMatchesLibm) {
  sweep("log", [](double x) { return rsr::math::log(x); }, [](double x) { return std::log(x); }, 1e-300, 1e300, 200000,
        4e-16, true);
  sweep("log near 1", [](double x) { return rsr::math::log(x); }, [](double x) { return std::log(x); }, 0.5, 2.0, 100000,
        4e-15);
  EXPECT_LT(rsr::math::log(0), -1e300);
  EXPECT_NEAR(rsr::math::log(4.9e-324), std::log(4.9e-324), 1e-12);  // subnormal
}

TEST(Math, ExpMatchesLibm) {
  sweep("exp", [](double x) { return rsr::math::exp(x); }, [](double x) { return std::exp(x); }, -700, 700, 200000, 2e-15);
  EXPECT_EQ(rsr::math::exp(-800), 0.0);
  EXPECT_TRUE(std::isinf(rsr::math::exp(800)));
}

TEST(Math, Expm1MatchesLibmAndStaysExactNearZero) {
  sweep("expm1", [](double x) { return rsr::math::expm1(x); }, [](double x) { return std::expm1(x); }, -40, 40, 200000,
        4e-15);
  sweep("expm1 tiny", [](double x) { return rsr::math::expm1(-x); }, [](double x) { return std::expm1(-x); }, 1e-300,
        0.4, 100000, 4e-16, true);
}

TEST(Math, LgammaMatchesLibm) {
  sweep("lgamma", [](double x) { return rsr::math::lgamma(x); }, [](double x) { return std::lgamma(x); }, 1e-3, 1e7,
        100000, 1e-13, true, 1.0);
  for (int n = 1; n <= 5000; ++n) {  // the sign test's factorials
    ASSERT_LE(rel_error(rsr::math::lgamma(n + 1.0), std::lgamma(n + 1.0)), 1e-14) << n;
  }
}

TEST(Math, ErfcMatchesLibm) {
  // Relative error, down to the far tail the sign test's normal approximation reaches.
  sweep("erfc", [](double x) { return rsr::math::erfc(x); }, [](double x) { return std::erfc(x); }, -6, 26, 200000, 1e-9);
  EXPECT_NEAR(rsr::math::erfc(0), 1.0, 1e-16);
}

TEST(Math, SqrtAndRounding) {
  sweep("sqrt", [](double x) { return rsr::math::sqrt(x); }, [](double x) { return std::sqrt(x); }, 1e-300, 1e300,
        100000, 0, true);
  EXPECT_EQ(rsr::math::round_to_int(2.5), 3);
  EXPECT_EQ(rsr::math::round_to_int(2.49), 2);
  EXPECT_EQ(rsr::math::round_to_int(-2.5), -3);
  EXPECT_EQ(rsr::math::round_to_int(1e15 + 0.7), static_cast<int64_t>(1e15) + 1);
}

}  // namespace
