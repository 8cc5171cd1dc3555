#include "leaks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../hot/engine.h"
#include "../hot/tables.h"
#include "handlers.h"
#include "proc.h"
#include "state.h"

namespace rsr::cold {
namespace {

constexpr int kProbeRing = 5;    // a level is the lowest of this many probes
constexpr int kHistory = 8;      // checks kept
constexpr int kWindow = 3;       // checks a window spans at most
constexpr int kMaxTracked = 1024;
constexpr int kMinRises = 2;     // accumulation: rises at this many consecutive checks at least
constexpr double kZ = 3.0;       // significance of a site's growth, in standard deviations

enum Type { kMemoryGrowth, kSiteGrowth, kAccumulation, kHighMemory, kTypes };
enum Severity { kLow, kMedium, kHigh, kCritical, kSeverities };
constexpr const char* kTypeNames[kTypes] = {"memory_growth", "site_growth", "accumulation", "high_memory"};
constexpr const char* kSeverityNames[kSeverities] = {"LOW", "MEDIUM", "HIGH", "CRITICAL"};

struct Level {
  int64_t live = 0;
  int64_t samples = 0;
};

struct Point {
  int64_t t_ms = 0;  // realtime
  int64_t live = 0;
  int64_t samples = 0;
  int64_t rss = 0;   // global series only
};

// A bounded series of points, oldest first.
struct Series {
  Point p[kHistory + 1];
  int n = 0;
  void push(const Point& x, int cap) {
    if (n == cap) {
      std::memmove(p, p + 1, sizeof(Point) * static_cast<size_t>(n - 1));
      --n;
    }
    p[n++] = x;
  }
};

struct ProbeRing {
  Level v[kProbeRing];
  int n = 0;
  int next = 0;
  void push(const Level& x) {
    v[next] = x;
    next = (next + 1) % kProbeRing;
    if (n < kProbeRing) ++n;
  }
  Level level() const {
    Level best = v[0];
    for (int i = 1; i < n; ++i)
      if (v[i].live < best.live) best = v[i];
    return best;
  }
};

struct TrackedSite {
  uint32_t site = 0;
  ProbeRing probes;
  Series history;
};

struct Indicator {
  Type type;
  Severity severity;
  Point from, to;
  int rises = 0;
  const TrackedSite* site = nullptr;
  Series series;
};

struct State {
  bool enabled = false;
  int64_t interval_ms = 0, probe_ms = 0;
  int64_t next_probe = INT64_MAX, next_check = INT64_MAX;
  ProbeRing heap_probes;
  int64_t rss_now = 0;
  Series heap_history;
  Vector<TrackedSite> sites;
  Vector<uint16_t> slot_of;  // site index -> 1 + position in `sites`, 0 when not tracked
  uint64_t checks = 0;
  int probes_since_check = 0;  // the current levels are newer than the last check only after one
  uint64_t untracked = 0;    // sizeable sites that found no room
  uint64_t detected[kTypes][kSeverities] = {};
};
State* g_state = nullptr;

int64_t min_site_bytes() { return g_cold.config.leak_min_site_bytes; }

void probe() {
  State& s = *g_state;
  ++s.probes_since_check;
  const hot::Totals t = hot::read_totals();
  s.heap_probes.push({static_cast<int64_t>(t.alloc_bytes - t.free_bytes), 0});
  s.rss_now = static_cast<int64_t>(read_memory_facts().rss_bytes);
  const hot::Tables& tables = hot::g_tables;
  if (!tables.sites) return;
  if (s.slot_of.size() != hot::site_slots()) s.slot_of.assign(hot::site_slots(), 0);
  const int64_t admit = std::max<int64_t>(1, min_site_bytes() / 4);
  for (uint64_t i = 0; i < hot::site_slots(); ++i) {
    const hot::Site& site = tables.sites[i];
    if (site.hash.load(std::memory_order_relaxed) == 0) continue;
    const Level now{site.live_bytes.load(std::memory_order_relaxed), site.live_samples.load(std::memory_order_relaxed)};
    uint16_t slot = s.slot_of[i];
    if (slot == 0) {
      if (now.live < admit) continue;
      if (s.sites.size() >= kMaxTracked) {
        ++s.untracked;
        continue;
      }
      s.sites.push_back(TrackedSite{});
      s.sites.back().site = static_cast<uint32_t>(i);
      slot = static_cast<uint16_t>(s.sites.size());
      s.slot_of[i] = slot;
    }
    s.sites[slot - 1].probes.push(now);
  }
}

Point heap_point(const State& s, int64_t t_ms) {
  Point p;
  p.t_ms = t_ms;
  p.live = s.heap_probes.level().live;
  p.rss = s.rss_now;
  return p;
}

Point site_point(const TrackedSite& ts, int64_t t_ms) {
  const Level l = ts.probes.level();
  return Point{t_ms, l.live, l.samples, 0};
}

// The newest point against the one up to kWindow checks older.
int window_start(const Series& x) { return std::max(0, x.n - 1 - kWindow); }

bool significant_growth(const Point& from, const Point& to) {
  const double n0 = static_cast<double>(std::max<int64_t>(from.samples, 0));
  const double n1 = static_cast<double>(std::max<int64_t>(to.samples, 0));
  return n1 - n0 > kZ * std::sqrt(n0 + n1) && to.live - from.live >= min_site_bytes() &&
         to.live >= min_site_bytes();
}

double ratio(const Point& from, const Point& to) {
  return from.live > 0 ? static_cast<double>(to.live) / static_cast<double>(from.live) - 1.0 : INFINITY;
}

// Judges every series; appends what it finds to `out`.
void evaluate(const Series& heap, const Vector<Series>& site_series, Vector<Indicator>& out) {
  const Config& c = g_cold.config;
  const Point& newest = heap.p[heap.n - 1];
  // high_memory: RSS now, against the threshold.
  const int64_t limit = c.leak_memory_threshold_mb * 1024 * 1024;
  if (newest.rss > limit) {
    Indicator i{kHighMemory, kMedium, {}, {}, 0, nullptr, {}};
    i.from = Point{newest.t_ms, limit, 0, 0};
    i.to = Point{newest.t_ms, newest.rss, 0, newest.rss};
    if (newest.rss >= 4 * limit) i.severity = kCritical;
    else if (newest.rss >= 2 * limit) i.severity = kHigh;
    out.push_back(i);
  }
  if (heap.n >= 2) {
    const Point& from = heap.p[window_start(heap)];
    const double r = ratio(from, newest);
    if (r > c.leak_growth_threshold && newest.live - from.live >= min_site_bytes()) {
      Indicator i{kMemoryGrowth, r >= 4 * c.leak_growth_threshold ? kCritical : kHigh, from, newest, 0, nullptr, heap};
      out.push_back(i);
    }
  }
  const double heap_live = static_cast<double>(std::max<int64_t>(newest.live, 1));
  for (size_t k = 0; k < site_series.size(); ++k) {
    const Series& x = site_series[k];
    if (x.n < 2) continue;
    const Point& to = x.p[x.n - 1];
    const Point& from = x.p[window_start(x)];
    const double share = static_cast<double>(to.live) / heap_live;
    if (significant_growth(from, to) && ratio(from, to) > c.leak_model_growth_threshold) {
      const Severity sev = share >= 0.5 ? kCritical : share >= 0.1 ? kHigh : kMedium;
      out.push_back(Indicator{kSiteGrowth, sev, from, to, 0, &g_state->sites[k], x});
      continue;  // one indicator per site
    }
    int rises = 0;  // counted within the window only, so `from` is never older than site_growth's
    for (int j = x.n - 1; j > 0 && rises < kWindow && x.p[j].live > x.p[j - 1].live; --j) ++rises;
    if (rises >= kMinRises && significant_growth(x.p[x.n - 1 - rises], to)) {
      out.push_back(Indicator{kAccumulation, share >= 0.1 ? kMedium : kLow, x.p[x.n - 1 - rises], to, rises,
                              &g_state->sites[k], x});
    }
  }
}

// Every site's stored history, plus (when `now_ms` is set) its current level as the newest point.
Vector<Series> site_histories(int64_t now_ms) {
  Vector<Series> all;
  all.reserve(g_state->sites.size());
  for (const TrackedSite& ts : g_state->sites) {
    all.push_back(ts.history);
    if (now_ms && ts.probes.n > 0) all.back().push(site_point(ts, now_ms), kHistory + 1);
  }
  return all;
}

void background_check() {
  State& s = *g_state;
  const int64_t now = now_ms();
  s.heap_history.push(heap_point(s, now), kHistory);
  for (TrackedSite& ts : s.sites) {
    if (ts.probes.n > 0) ts.history.push(site_point(ts, now), kHistory);
  }
  ++s.checks;
  s.probes_since_check = 0;
  Vector<Indicator> found;
  evaluate(s.heap_history, site_histories(0), found);
  for (const Indicator& i : found) ++s.detected[i.type][i.severity];
}

void write_point(json::JsonWriter<String>& w, const Point& p, bool with_samples) {
  w.begin_object().field("t", static_cast<double>(p.t_ms) / 1000.0).field("live_bytes", p.live);
  if (with_samples) w.field("live_samples", p.samples);
  else w.field("rss_bytes", p.rss);
  w.end_object();
}

void write_detected(json::JsonWriter<String>& w) {
  w.key("detected").begin_object();
  for (int t = 0; t < kTypes; ++t) {
    w.key(kTypeNames[t]).begin_object();
    for (int v = 0; v < kSeverities; ++v) w.field(kSeverityNames[v], g_state->detected[t][v]);
    w.end_object();
  }
  w.end_object();
}

}  // namespace

void leaks_init() {
  const Config& c = g_cold.config;
  g_state = heap_new<State>();
  State& s = *g_state;
  s.enabled = c.leak_detection_enabled;
  if (!s.enabled) return;
  s.interval_ms = c.leak_check_interval * 1000;
  s.probe_ms = std::clamp<int64_t>(s.interval_ms / 20, 100, 15000);
  const int64_t now = monotonic_ms();
  s.next_probe = now;
  s.next_check = now + s.interval_ms;
}

int64_t leaks_next_due_ms() {
  if (!g_state || !g_state->enabled) return INT64_MAX;
  return std::min(g_state->next_probe, g_state->next_check);
}

void leaks_run_due(int64_t now) {
  if (!g_state || !g_state->enabled) return;
  State& s = *g_state;
  if (now >= s.next_probe) {
    probe();
    s.next_probe = now + s.probe_ms;
  }
  if (now >= s.next_check) {
    background_check();
    s.next_check = now + s.interval_ms;
  }
}

uint64_t leak_checks() { return g_state ? g_state->checks : 0; }

bool leaks_running() { return g_state && g_state->enabled; }

void leak_detected_each(void (*fn)(const char*, const char*, uint64_t, void*), void* ctx) {
  for (int t = 0; t < kTypes; ++t)
    for (int v = 0; v < kSeverities; ++v) fn(kTypeNames[t], kSeverityNames[v], g_state ? g_state->detected[t][v] : 0, ctx);
}

void write_leak_status(json::JsonWriter<String>& w) {
  w.key("leaks").begin_object().field("enabled", g_state && g_state->enabled);
  w.field("interval_s", g_cold.config.leak_check_interval).field("checks", leak_checks());
  if (g_state) write_detected(w);
  w.end_object();
}

void write_leak_report(json::JsonWriter<String>& w) {
  State& s = *g_state;
  const Config& c = g_cold.config;
  if (s.heap_probes.n == 0) probe();  // asked before the first probe: take one now
  // Only once a full ring of probes is newer than the last check: before that the level mixes in
  // probes from before it and would break a run of rises.
  const int64_t now = s.probes_since_check >= kProbeRing || s.heap_history.n == 0 ? now_ms() : 0;
  Series heap = s.heap_history;
  if (now) heap.push(heap_point(s, now), kHistory + 1);
  const Vector<Series> sites = site_histories(now);
  Vector<Indicator> found;
  evaluate(heap, sites, found);
  std::stable_sort(found.begin(), found.end(),
                   [](const Indicator& a, const Indicator& b) { return a.severity > b.severity; });

  w.field("enabled", true)
      .field("interval_s", c.leak_check_interval)
      .field("probe_s", static_cast<double>(s.probe_ms) / 1000.0)
      .field("checks", s.checks)
      .field("history_points", static_cast<int64_t>(heap.n))
      .field("tracked_sites", static_cast<uint64_t>(s.sites.size()))
      .field("untracked_sites", s.untracked);
  w.key("thresholds").begin_object()
      .field("growth", c.leak_growth_threshold)
      .field("site_growth", c.leak_model_growth_threshold)
      .field("memory_bytes", c.leak_memory_threshold_mb * 1024 * 1024)
      .field("min_site_bytes", c.leak_min_site_bytes)
      .end_object();
  w.key("history").begin_array();
  for (int i = 0; i < heap.n; ++i) write_point(w, heap.p[i], false);
  w.end_array();
  write_detected(w);
  w.key("indicators").begin_array();
  for (const Indicator& i : found) {
    const double window_s = static_cast<double>(i.to.t_ms - i.from.t_ms) / 1000.0;
    const double r = i.type == kHighMemory ? static_cast<double>(i.to.live) / static_cast<double>(i.from.live) - 1.0
                                           : ratio(i.from, i.to);
    w.begin_object()
        .field("type", kTypeNames[i.type])
        .field("severity", kSeverityNames[i.severity])
        .field("window_s", window_s)
        .field("from_bytes", i.from.live)
        .field("to_bytes", i.to.live)
        .field("growth_bytes", i.to.live - i.from.live);
    w.key("growth_ratio");
    if (std::isfinite(r)) w.value(r);
    else w.null();
    if (i.site) {
      w.field("rises", i.rises);
      w.key("site");
      write_site(w, i.site->site, window_s);
      w.key("series").begin_array();
      for (int k = 0; k < i.series.n; ++k) write_point(w, i.series.p[k], true);
      w.end_array();
    }
    w.end_object();
  }
  w.end_array();
  write_modules(w);
}

}  // namespace rsr::cold
