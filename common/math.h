// The few elementary functions the library needs, without libm: loading libm would cost every
// process the preload starts in (a mapping, its relocations and a dozen page faults before
// main). Double precision, accurate to a few units in the last place over the ranges used here
// (tests/unit/math_test.cc holds them against libm): the sampler's exponential draws and
// weights, the leak model's sign test, the capture clock's rounding.
#pragma once

#include <cstdint>
#include <cstring>

namespace rsr::math {

inline constexpr double kLn2 = 0.69314718055994530942;
inline constexpr double kSqrtPi = 1.77245385090551602730;
inline constexpr double kHalfLog2Pi = 0.91893853320467274178;

// 2^k for an integer k in the normal range (clamped to it).
inline double pow2(int k) {
  if (k < -1022) k = -1022;
  if (k > 1023) k = 1023;
  const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Round to nearest, ties away from zero.
inline int64_t round_to_int(double x) { return static_cast<int64_t>(x < 0 ? x - 0.5 : x + 0.5); }

inline double sqrt(double x) {
  double r;
  __asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
  return r;
}

// Natural logarithm, x > 0 (0 and below: -huge). x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: an odd series in s.
inline double log(double x) {
  if (!(x > 0)) return -1.0e308;
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff);
  if (e == 0) {  // subnormal: scale into the normal range first
    return log(x * pow2(64)) - 64 * kLn2;
  }
  e -= 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  std::memcpy(&m, &bits, sizeof m);
  if (m > 1.41421356237309504880) {
    m *= 0.5;
    ++e;
  }
  const double s = (m - 1) / (m + 1);
  const double s2 = s * s;
  double sum = 0;
  for (int k = 25; k >= 3; k -= 2) sum = (sum + 1.0 / k) * s2;
  return 2 * s * (1 + sum) + e * kLn2;
}

// e^x. x = k ln 2 + r, |r| <= ln 2 / 2: a Taylor polynomial in r, scaled by 2^k. ln 2 is split
// into a head with trailing zero bits (k times it is exact) and a tail, so r keeps its precision
// for large k.
inline double exp(double x) {
  if (x > 709.78) return __builtin_inf();
  if (x < -745.2) return 0;
  const double kf = x / kLn2;
  const int k = static_cast<int>(kf < 0 ? kf - 0.5 : kf + 0.5);
  constexpr double kLn2Head = 6.93147180369123816490e-01, kLn2Tail = 1.90821492927058770002e-10;
  const double r = (x - k * kLn2Head) - k * kLn2Tail;
  double sum = 1;
  for (int n = 17; n >= 1; --n) sum = 1 + sum * r / n;
  if (k < -1022) return sum * pow2(k + 200) * pow2(-200);
  return sum * pow2(k);
}

// e^x - 1, exact near 0 where exp(x) - 1 would cancel.
inline double expm1(double x) {
  if (x > -0.5 && x < 0.5) {
    double sum = 0;
    for (int n = 20; n >= 1; --n) sum = x / n * (1 + sum);
    return sum;
  }
  return exp(x) - 1;
}

// log Gamma(x), x > 0. Stirling's series from 15 on; below, the recurrence
// Gamma(x) = Gamma(x + n) / (x (x + 1) ... (x + n - 1)).
inline double lgamma(double x) {
  double shift = 0;
  while (x < 15) {
    shift += log(x);
    x += 1;
  }
  const double inv = 1 / x;
  const double inv2 = inv * inv;
  const double series =
      inv * (1.0 / 12 + inv2 * (-1.0 / 360 + inv2 * (1.0 / 1260 + inv2 * (-1.0 / 1680 + inv2 * (1.0 / 1188)))));
  return (x - 0.5) * log(x) - x + kHalfLog2Pi + series - shift;
}

// The complementary error function. |z| < 2.5: 1 - erf(z) from erf's Taylor series (the
// result is at least 4e-4 there, so the subtraction loses nothing that matters); beyond, the
// continued fraction of erfc, evaluated from the bottom. erfc(-z) = 2 - erfc(z).
inline double erfc(double z) {
  if (z < 0) return 2 - erfc(-z);
  if (z < 2.5) {
    const double z2 = z * z;
    double term = z, sum = z;
    for (int n = 1; n < 80; ++n) {
      term *= -z2 / n;
      const double add = term / (2 * n + 1);
      sum += add;
      if (add < 1e-18 && add > -1e-18) break;
    }
    return 1 - 2 / kSqrtPi * sum;
  }
  double f = z;
  for (int k = 120; k >= 1; --k) f = z + (k * 0.5) / f;
  return exp(-z * z) / (kSqrtPi * f);
}

}  // namespace rsr::math
