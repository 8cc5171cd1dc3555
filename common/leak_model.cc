#include "leak_model.h"

#include <algorithm>
#include <limits>

#include "math.h"

namespace rsr::leakmodel {
namespace {

Point of_probe(const Probe& x, int64_t t0_ms) {
  Point q;
  q.t0_ms = t0_ms;
  q.t1_ms = x.t_ms;
  q.lo_bytes = q.last_bytes = x.bytes;
  q.lo_samples = q.last_samples = x.samples;
  q.births = x.births;
  q.deaths = x.deaths;
  q.rss = x.rss;
  return q;
}

void take_lowest(Point& into, const Point& other) {
  if (other.lo_bytes < into.lo_bytes) {
    into.lo_bytes = other.lo_bytes;
    into.lo_samples = other.lo_samples;
  }
}

// Merges the two neighbours that together span the least time (the oldest such pair), the newest
// kRecent points excepted.
void thin(Series& s) {
  int best = 0;
  int64_t best_span = std::numeric_limits<int64_t>::max();
  for (int i = 0; i + 1 < s.n - kRecent; ++i) {
    const int64_t span = s.p[i + 1].t1_ms - s.p[i].t0_ms;
    if (span < best_span) {
      best_span = span;
      best = i;
    }
  }
  Point merged = s.p[best + 1];
  merged.t0_ms = s.p[best].t0_ms;
  take_lowest(merged, s.p[best]);
  s.p[best] = merged;
  for (int i = best + 1; i + 1 < s.n; ++i) s.p[i] = s.p[i + 1];
  --s.n;
}

// Levels are lowest over this span: one point at least, one and a half learned cycles when a
// cycle was seen, and never more than a third of the series' life.
int64_t level_span(const Series& s, int64_t now_ms) {
  int64_t span = std::max<int64_t>(s.point_ms, static_cast<int64_t>(kCycleSpans * static_cast<double>(s.cycle_ms)));
  const int64_t life = now_ms - s.start_ms();
  return std::max<int64_t>(0, std::min(span, life / 3));
}

// The point whose end is nearest to `at_ms`.
Point nearest(const Series& s, int64_t at_ms) {
  const Point* best = &s.p[0];
  for (int i = 1; i < s.n; ++i)
    if (std::llabs(s.p[i].t1_ms - at_ms) < std::llabs(best->t1_ms - at_ms)) best = &s.p[i];
  return *best;
}

// The point's last probe as its level.
Point last_probe(Point p) {
  p.lo_bytes = p.last_bytes;
  p.lo_samples = p.last_samples;
  return p;
}

// A series' level at `at_ms`: the lowest over the `span` before it once the series has cycles,
// otherwise the last probe of the point nearest to it.
Point level_at(const Series& s, int64_t at_ms, int64_t span_ms) {
  return s.drops > 0 ? lowest(s, at_ms - span_ms, at_ms) : last_probe(nearest(s, at_ms));
}

}  // namespace

void Series::add(const Probe& x) {
  // Cycle learning: a drop is a fall by `drop_share` of the peak since the previous drop.
  if (n == 0) {
    last_drop_ms = x.t_ms;
    peak_bytes = x.bytes;
  } else {
    peak_bytes = std::max(peak_bytes, x.bytes);
    const int64_t fall = peak_bytes - x.bytes;
    if (fall >= drop_min_bytes && static_cast<double>(fall) >= drop_share * static_cast<double>(peak_bytes)) {
      ++drops;
      cycle_ms = std::max(cycle_ms, x.t_ms - last_drop_ms);
      last_drop_ms = x.t_ms;
      peak_bytes = x.bytes;
    }
  }
  if (n > 0 && x.t_ms - p[n - 1].t0_ms < point_ms) {  // the newest point is still open
    Point q = of_probe(x, p[n - 1].t0_ms);
    take_lowest(q, p[n - 1]);
    p[n - 1] = q;
    return;
  }
  if (n == kPoints) thin(*this);
  p[n] = of_probe(x, n ? p[n - 1].t1_ms : x.t_ms);
  ++n;
}

Point lowest(const Series& s, int64_t from_ms, int64_t to_ms) {
  const Point* best = nullptr;
  for (int i = 0; i < s.n; ++i) {
    const Point& q = s.p[i];
    if (q.t1_ms < from_ms || q.t0_ms > to_ms) continue;
    if (!best || q.lo_bytes < best->lo_bytes) best = &q;
  }
  if (best) return *best;
  // None overlaps: the point nearest to `to_ms`.
  for (int i = 0; i < s.n; ++i) {
    const Point& q = s.p[i];
    if (!best || std::llabs(q.t1_ms - to_ms) < std::llabs(best->t1_ms - to_ms)) best = &q;
  }
  return best ? *best : Point{};
}

double sign_test_p(int64_t net, int64_t events) {
  if (net <= 0) return 1.0;
  const int64_t m = std::max(events, net);
  const int64_t k = (m + net + 1) / 2;  // births at least
  if (m > 1000) {
    const double z = (static_cast<double>(2 * k - 1 - m)) / math::sqrt(static_cast<double>(m));
    return 0.5 * math::erfc(z / math::sqrt(2.0));
  }
  const double log_half_m = static_cast<double>(m) * math::log(0.5);
  const double lm = math::lgamma(static_cast<double>(m) + 1.0);
  double sum = 0.0;
  for (int64_t j = k; j <= m; ++j) {
    const double term = math::exp(lm - math::lgamma(static_cast<double>(j) + 1.0) -
                                 math::lgamma(static_cast<double>(m - j) + 1.0) + log_half_m);
    sum += term;
    if (term < sum * 1e-12) break;  // terms fall from here on (k >= m / 2)
  }
  return std::min(1.0, sum);
}

double z_of(double p) {
  if (p >= 0.5) return 0.0;
  double lo = 0.0, hi = 40.0;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * math::erfc(mid / math::sqrt(2.0)) > p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

double tarone_level(double* min_p, size_t n, double alpha) {
  std::sort(min_p, min_p + n);
  for (size_t k = 1; k <= n; ++k) {
    const double level = alpha / static_cast<double>(k);
    size_t count = 0;
    while (count < n && min_p[count] <= level) ++count;
    if (count <= k) return level;
  }
  return alpha / static_cast<double>(std::max<size_t>(n, 1));
}

namespace {

// The verdict's level-dependent part: whether the measured site is growing at `level`.
void decide(SiteVerdict& v, bool named, const SiteParams& params, double level) {
  const int64_t growth = v.to.lo_bytes - v.from.lo_bytes;
  const double keep = named ? level * kKeepFactor : level;
  v.growing = v.judged && level > 0 && v.p <= keep && !v.plateau && growth >= params.min_bytes &&
              v.to.lo_bytes >= params.min_bytes;
  v.site_growth = v.growing && v.ratio > params.ratio_threshold;
}

}  // namespace

SiteVerdict judge_site(const Series& s, int64_t now_ms, const SiteParams& params, double level) {
  SiteVerdict v;
  if (s.n < 3) return v;
  v.judged = true;
  const int64_t start = s.start_ms();
  v.span_ms = level_span(s, now_ms);
  const int64_t ref_at = start + std::max(v.span_ms, (now_ms - start) / kReferenceAt);
  v.from = level_at(s, ref_at, v.span_ms);
  // Lows over as long a time at both ends: the reference may be a merged point, the low of many
  // probes.
  if (s.drops > 0) v.span_ms = std::max(v.span_ms, v.from.t1_ms - v.from.t0_ms);
  v.to = level_at(s, now_ms, v.span_ms);
  const Point& newest = s.newest();
  v.births = newest.births - v.from.births;
  v.deaths = newest.deaths - v.from.deaths;
  v.net = v.to.lo_samples - v.from.lo_samples;
  const int64_t events = 2 * v.deaths + std::llabs(v.net);
  v.p = sign_test_p(v.net, events);
  v.min_p = sign_test_p(std::max<int64_t>(events, 1), events);
  v.ratio = v.from.lo_bytes > 0
                ? static_cast<double>(v.to.lo_bytes) / static_cast<double>(v.from.lo_bytes) - 1.0
                : std::numeric_limits<double>::infinity();
  for (int i = s.n - 1; i > 0 && s.p[i].lo_bytes > s.p[i - 1].lo_bytes; --i) ++v.rises;

  // Persistence: the last quarter of the evidence's time carries its share of the growth.
  const int64_t evidence_ms = v.to.t1_ms - v.from.t1_ms;
  if (v.net > 0 && evidence_ms > 0) {
    const int64_t quarter_at = v.to.t1_ms - evidence_ms / 4;
    const Point q = level_at(s, quarter_at, v.span_ms);
    if (q.t1_ms > v.from.t1_ms && q.t1_ms < v.to.t1_ms) {
      const double share = static_cast<double>(v.to.t1_ms - q.t1_ms) / static_cast<double>(evidence_ms);
      const double expected = static_cast<double>(v.net) * share;
      const double seen = static_cast<double>(v.to.lo_samples - q.lo_samples);
      const double turnover = 2.0 * static_cast<double>(newest.deaths - q.deaths);
      v.plateau = expected - seen > kPlateauZ * math::sqrt(std::max(expected, 1.0) + turnover);
    }
  }
  decide(v, s.named, params, level);
  return v;
}

double judge_sites(const Series* const* sites, size_t n, int64_t now_ms, const SiteParams& params, double alpha,
                 SiteVerdict* out, double* scratch) {
  size_t judged = 0;
  for (size_t i = 0; i < n; ++i) {
    out[i] = judge_site(*sites[i], now_ms, params, 0.0);
    if (out[i].judged) scratch[judged++] = out[i].min_p;
  }
  const double level = tarone_level(scratch, judged, alpha);
  for (size_t i = 0; i < n; ++i) {
    decide(out[i], sites[i]->named, params, level);
  }
  return level;
}

HeapVerdict judge_heap(const Series& s, int64_t now_ms, int64_t window_ms, double threshold, int64_t min_bytes) {
  HeapVerdict v;
  if (s.n < 2) return v;
  v.judged = true;
  const int64_t span = level_span(s, now_ms);
  const int64_t start = s.start_ms();
  const int64_t from_at = std::max(now_ms - window_ms, start + span);
  v.from = level_at(s, from_at, span);
  v.to = level_at(s, now_ms, s.drops > 0 ? std::max(span, v.from.t1_ms - v.from.t0_ms) : span);
  v.ratio = v.from.lo_bytes > 0
                ? static_cast<double>(v.to.lo_bytes) / static_cast<double>(v.from.lo_bytes) - 1.0
                : std::numeric_limits<double>::infinity();
  v.growing = v.to.t1_ms > v.from.t1_ms && v.ratio > threshold && v.to.lo_bytes - v.from.lo_bytes >= min_bytes;
  return v;
}

}  // namespace rsr::leakmodel
