// The leak detector's arithmetic (SPEC section 4; common/protocol.md, check_leaks), apart from
// where its figures come from, so the same code judges the live process (preload/cold/leaks.cc),
// sites grouped by the frame that names them (rsrmemctl check-leaks) and simulated days of a
// service's life (tests/leaks/simulation_test.cc). Nothing here allocates or reads a
// clock: times are passed in.
//
// Figures. A *probe* reads, for the whole heap or for one call site: the live bytes (exact for the
// heap, the sampler's estimate for a site), the site's live samples, and its sampled blocks born
// and freed so far. A *series* keeps the probes of a life as at most kPoints points, each the
// lowest probe of its span (so a burst of temporaries never looks like growth) with the birth
// and death counts at its end; when full, the two neighbours that together span the least time
// are merged (the newest kRecent points excepted, so recent levels stay probe by probe), so the
// series always covers the whole life at a resolution that coarsens with it.
//
// Judging a site. The reference is its level an eighth into its life (a working set built at
// start-up or a cache that filled early is behind it once the process lived eight times as
// long), against its level now. A level is the last probe of a point, or, for a series that
// has shown cycles (below), the lowest point over the last `span`: both ends alike, so neither
// is the lower by construction; and the evidence is the site's turnover since the reference: its
// durable deaths d (sampled blocks freed at least a probe interval after their birth; churn that
// never lives across a probe moves no level and is not counted) and its net growth n in samples.
// A site whose level does not grow gives each durable event an even chance of being a birth or a
// death; with about n + d durable births beside d deaths, n is judged by the one-sided sign test
// p = P(Binomial(2d + n, 1/2) >= d + n). A leak's evidence grows with time (nothing it allocates
// dies); a cache's, a batch's or a session table's shrinks as their turnover grows. The significance level is the check's false-alarm budget `alpha` shared among
// the sites that could reach it at all (Tarone's correction for discrete tests: a site with m
// events cannot do better than 2^-m, so quiet sites do not dilute the budget).
// Once a background check named a site, it stays named while p stays within kKeepFactor of the
// level (the reference moves on with the life, and a leak's evidence may dip for a check).
// Two further conditions make it a leak rather than a level that grew once:
//   - persistence: the growth has not stopped. The last quarter of the evidence's time must not
//     fall significantly (z > kPlateauZ) short of its share of the growth; a cache that filled and
//     plateaued, or a working set built at start-up, fails this as soon as the shortfall shows;
//   - cycles: a series remembers its drops (a fall by half of its peak since the last drop; for
//     the heap, by half the growth threshold) and
//     the longest time between two of them, and levels are the lowest over 1.5 such cycles, so a
//     batch built and freed again and again reads at its trough once one cycle has been seen.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rsr::leakmodel {

inline constexpr int kPoints = 48;
inline constexpr int kRecent = 16;       // the newest points are never merged
inline constexpr int kReferenceAt = 8;   // a site's reference level: an eighth into its life
inline constexpr double kPlateauZ = 3.0;
inline constexpr double kCycleSpans = 1.5;
inline constexpr double kKeepFactor = 3.0;  // a named site stays named up to this p / level

struct Probe {
  int64_t t_ms = 0;
  int64_t bytes = 0;    // live bytes
  int64_t samples = 0;  // live samples (sites)
  int64_t births = 0;   // cumulative sampled blocks born (sites)
  int64_t deaths = 0;   // cumulative durable deaths (sites)
  int64_t rss = 0;      // resident bytes (the heap series)
};

struct Point {
  int64_t t0_ms = 0, t1_ms = 0;  // the span the point covers
  int64_t lo_bytes = 0;          // the lowest probe of the span
  int64_t lo_samples = 0;        // that probe's live samples
  int64_t births = 0, deaths = 0;  // at t1
  int64_t last_bytes = 0;        // the span's last probe
  int64_t last_samples = 0;
  int64_t rss = 0;               // the span's last probe
};

struct Series {
  Point p[kPoints];
  int n = 0;
  int64_t point_ms = 0;     // a point is closed once it spans this long
  bool open = false;        // p[n - 1] still takes probes
  // Cycle learning.
  int64_t peak_bytes = 0;   // highest probe since the last drop
  int64_t last_drop_ms = 0;  // start of the series until the first drop
  int64_t cycle_ms = 0;     // longest time between drops seen
  int64_t drops = 0;
  bool named = false;       // the last background check named it (set by the caller)
  int64_t drop_min_bytes = 0;  // a drop must free at least this much
  double drop_share = 0.5;     // and this share of the peak

  void add(const Probe& x);
  int64_t start_ms() const { return n ? p[0].t0_ms : 0; }
  const Point& newest() const { return p[n - 1]; }
};

// The lowest point over [from, to] (points overlapping it), or the nearest point when none does.
Point lowest(const Series& s, int64_t from_ms, int64_t to_ms);

// One-sided sign test: the probability of a net growth of `net` or more among `events`
// births and deaths that are each a birth with probability 1/2. 1 when net <= 0.
double sign_test_p(int64_t net, int64_t events);
// The one-sided normal quantile z with P(Z > z) = p.
double z_of(double p);

// Tarone's correction: the per-site level for `alpha` shared among sites whose smallest
// attainable p-values are `min_p[0..n)` (sorted in place).
double tarone_level(double* min_p, size_t n, double alpha);

struct SiteParams {
  int64_t min_bytes = 1 << 20;  // growth and level at least this much
  double ratio_threshold = 1.0; // site_growth above, accumulation at or below
};

struct SiteVerdict {
  bool judged = false;    // enough history to judge
  bool growing = false;   // significant, persistent, large enough: a leak
  bool site_growth = false;  // growing, by more than ratio_threshold (otherwise accumulation)
  bool plateau = false;   // significant overall, but the growth stopped
  Point from, to;         // the reference level and the level now
  int64_t span_ms = 0;    // the span the levels are lowest over
  int64_t births = 0, deaths = 0;  // since the reference
  int64_t net = 0;        // samples
  double p = 1.0;         // the sign test's p-value
  double min_p = 1.0;     // the smallest p-value these events could give
  double ratio = 0.0;     // to / from - 1 (infinity when from is 0)
  int rises = 0;          // consecutive rises of the level over the newest points
};

// Judges a site at `now_ms`; `level` is its share of the false-alarm budget (tarone_level).
// Call with level 0 first to learn `min_p`.
SiteVerdict judge_site(const Series& s, int64_t now_ms, const SiteParams& params, double level);

// Judges `n` sites at `now_ms` with the check's false-alarm budget `alpha` shared among them
// (tarone_level); `scratch` holds `n` doubles. Returns the per-site level used.
double judge_sites(const Series* const* sites, size_t n, int64_t now_ms, const SiteParams& params, double alpha,
                 SiteVerdict* out, double* scratch);

struct HeapVerdict {
  bool judged = false;
  bool growing = false;
  Point from, to;
  double ratio = 0.0;
};

// memory_growth: the heap's level now against its level `window_ms` ago (or at the start of the
// series when it is younger), both lowest over the learned cycle.
HeapVerdict judge_heap(const Series& s, int64_t now_ms, int64_t window_ms, double threshold, int64_t min_bytes);

}  // namespace rsr::leakmodel
