#include "metrics.h"

#include <cstring>

#include "../hot/api.h"
#include "../hot/stack.h"
#include "../hot/tables.h"
#include "leaks.h"
#include "proc.h"
#include "profiling.h"
#include "state.h"

namespace rsr::cold {
namespace {

using hot::g_api;
using hot::kApiLeakKinds;
using hot::kApiNames;

struct Snapshot {
  Vector<SiteFigures> live, growth;
};
Snapshot* g_snapshot = nullptr;

// Cache counts as of the last publication, by the first slot holding each name.
struct PublishedCaches {
  int64_t at_ms;       // realtime
  int64_t at_mono_ms;
  uint64_t hits[kApiNames + 1], misses[kApiNames + 1];
  bool shown[kApiNames + 1];
};
constinit PublishedCaches g_caches{};

// The first slot holding the same name as slot `i` (a name may own two slots, see hot/api.h).
int first_slot(const hot::ApiName* table, int named, int i) {
  const char* name = hot::api_name(table, named, i);
  for (int j = 0; j < i && j < named; ++j) {
    const char* other = hot::api_name(table, named, j);
    if (other && std::strcmp(other, name) == 0) return j;
  }
  return i;
}

void write_site_list(Writer& w, const char* key, const Vector<SiteFigures>& sites) {
  w.key(key).begin_array();
  for (const SiteFigures& f : sites) write_site(w, f);
  w.end_array();
}

// Background-check counts merged with those recorded through the C API, grouped by type.
struct LeakCounts {
  struct Row {
    const char* type;
    const char* severity;
    uint64_t n;
  };
  Row rows[4 * 4 + kApiLeakKinds + 1];
  int count = 0;
  void add(const char* type, const char* severity, uint64_t n) {
    for (int i = 0; i < count; ++i) {
      if (std::strcmp(rows[i].type, type) == 0 && std::strcmp(rows[i].severity, severity) == 0) {
        rows[i].n += n;
        return;
      }
    }
    if (count < static_cast<int>(sizeof rows / sizeof rows[0])) rows[count++] = Row{type, severity, n};
  }
};

void write_leaks(Writer& w) {
  LeakCounts c;
  leak_detected_each([](const char* t, const char* s, uint64_t n, void* ctx) { static_cast<LeakCounts*>(ctx)->add(t, s, n); },
                     &c);
  for (int i = 0; i <= kApiLeakKinds; ++i) {
    const uint64_t n = g_api.leaks[i].load(std::memory_order_relaxed);
    const char* type = hot::api_name(g_api.leak_names, kApiLeakKinds, i, 0);
    if (n > 0 && type) c.add(type, hot::api_name(g_api.leak_names, kApiLeakKinds, i, 1), n);
  }
  w.key("leaks").begin_object()
      .field("enabled", leaks_running())
      .field("interval_s", g_cold.config.leak_check_interval)
      .field("checks", leak_checks());
  w.key("detected").begin_object();
  for (int i = 0; i < c.count; ++i) {
    bool seen = false;
    for (int j = 0; j < i && !seen; ++j) seen = std::strcmp(c.rows[j].type, c.rows[i].type) == 0;
    if (seen) continue;
    w.key(c.rows[i].type).begin_object();
    for (int k = i; k < c.count; ++k)
      if (std::strcmp(c.rows[k].type, c.rows[i].type) == 0) w.field(c.rows[k].severity, c.rows[k].n);
    w.end_object();
  }
  w.end_object().end_object();
}

void write_stack_depth(Writer& w) {
  const hot::DepthHistogram h = hot::stack_depths();
  w.key("stack_depth").begin_object();
  w.key("bounds").begin_array();
  for (int b : hot::kDepthBounds) w.value(b);
  w.end_array().key("counts").begin_array();
  for (const uint64_t c : h.counts) w.value(c);
  w.end_array();
  w.field("sum", h.sum).field("count", h.count);
  w.end_object();
}

void write_caches(Writer& w) {
  const PublishedCaches& p = g_caches;
  w.key("caches").begin_object()
      .field("enabled", g_cold.config.cache_metrics_enabled)
      .field("update_frequency_s", g_cold.config.cache_metrics_update_frequency)
      .field("updated_at", p.at_ms / 1000);
  w.key("entries").begin_array();
  for (int i = 0; i <= kApiNames; ++i) {
    if (!p.shown[i] || (i == kApiNames && p.hits[i] + p.misses[i] == 0)) continue;
    w.begin_object()
        .field("name", hot::api_name(g_api.cache_names, kApiNames, i))
        .field("hits", p.hits[i])
        .field("misses", p.misses[i])
        .end_object();
  }
  w.end_array().end_object();
}

void write_scopes(Writer& w) {
  struct Row {
    uint64_t counts[hot::kScopeBuckets];
    uint64_t count, sum_bytes, retained_bytes;
    bool shown;
  };
  Row rows[kApiNames + 1] = {};
  for (int i = 0; i <= kApiNames; ++i) {
    if (!hot::api_name(g_api.scope_names, kApiNames, i)) continue;
    const hot::ScopeStats& s = g_api.scopes[i];
    Row& r = rows[first_slot(g_api.scope_names, kApiNames, i)];
    r.shown = true;
    for (int b = 0; b < hot::kScopeBuckets; ++b) r.counts[b] += s.counts[b].load(std::memory_order_relaxed);
    r.count += s.count.load(std::memory_order_relaxed);
    r.sum_bytes += s.sum_bytes.load(std::memory_order_relaxed);
    r.retained_bytes += s.retained_bytes.load(std::memory_order_relaxed);
  }
  w.key("scopes").begin_object();
  w.key("bounds_mb").begin_array();
  for (double b : hot::kScopeBoundsMb) w.value(b);
  w.end_array();
  w.key("entries").begin_array();
  for (int i = 0; i <= kApiNames; ++i) {
    const Row& r = rows[i];
    if (!r.shown || (i == kApiNames && r.count == 0)) continue;
    w.begin_object().field("name", hot::api_name(g_api.scope_names, kApiNames, i));
    w.key("counts").begin_array();
    for (uint64_t c : r.counts) w.value(c);
    w.end_array();
    w.field("sum_mb", static_cast<double>(r.sum_bytes) / (1024.0 * 1024.0))
        .field("count", r.count)
        .field("retained_bytes", r.retained_bytes)
        .end_object();
  }
  w.end_array().end_object();
}

}  // namespace

namespace {

// The top sites by live bytes and by growth since each site's baseline, read now.
void take_snapshot(Snapshot& snap, int64_t now) {
  const double window_s = static_cast<double>(now - g_cold.growth_baseline_ms) / 1000.0;
  Vector<uint32_t> by_live, by_growth;
  top_sites(static_cast<size_t>(g_cold.config.metrics_top_sites), by_live, by_growth);
  snap.live.clear();
  for (uint32_t i : by_live) snap.live.push_back(read_site(i, window_s));
  snap.growth.clear();
  for (uint32_t i : by_growth) snap.growth.push_back(read_site(i, window_s));
}

}  // namespace

void metrics_start() {
  g_cold.growth_baseline_ms = g_cold.start_ms;
  g_cold.last_baseline_mono_ms = monotonic_ms();
}

uint64_t refresh_sites() {
  const int64_t now = now_ms();
  if (!g_snapshot) g_snapshot = heap_new<Snapshot>();
  take_snapshot(*g_snapshot, now);

  g_cold.growth_baseline_ms = now;
  g_cold.last_baseline_mono_ms = monotonic_ms();
  hot::Tables& t = hot::g_tables;
  if (!t.sites) return 0;
  uint64_t n = 0;
  hot::each_site([&](uint32_t i) {
    hot::Site& s = t.sites[i];
    s.baseline_live_bytes = s.live_bytes.load(std::memory_order_relaxed);
    s.baseline_time_ms = now;
    ++n;
  });
  return n;
}

void publish_caches() {
  PublishedCaches& p = g_caches;
  for (int i = 0; i <= kApiNames; ++i) {
    p.hits[i] = p.misses[i] = 0;
    p.shown[i] = false;
  }
  for (int i = 0; i <= kApiNames; ++i) {
    if (!hot::api_name(g_api.cache_names, kApiNames, i)) continue;
    const int at = first_slot(g_api.cache_names, kApiNames, i);
    p.shown[at] = true;
    p.hits[at] += g_api.caches[i].hits.load(std::memory_order_relaxed);
    p.misses[at] += g_api.caches[i].misses.load(std::memory_order_relaxed);
  }
  p.at_ms = now_ms();
  p.at_mono_ms = monotonic_ms();
}

void publish_no_caches() {
  g_caches.at_ms = now_ms();
  g_caches.at_mono_ms = monotonic_ms();
}

void metrics_tick(int64_t now_mono_ms) {
  const Config& c = g_cold.config;
  if (now_mono_ms - g_cold.last_baseline_mono_ms >= c.memory_metrics_update_interval * 1000) refresh_sites();
  if (now_mono_ms - g_caches.at_mono_ms >= c.cache_metrics_update_frequency * 1000) publish_caches();
}

void write_metrics(Writer& w) {
  const Config& c = g_cold.config;
  common_fields(w);
  const hot::Totals totals = hot::read_totals();
  const MemoryFacts mem = read_memory_facts();
  w.field("start_time", g_cold.start_ms / 1000)
      .field("uptime_s", uptime_s())
      .field("mode", mode_name())
      .field("threads", static_cast<uint64_t>(totals.threads))
      .field("rss_bytes", mem.rss_bytes)
      .field("peak_rss_bytes", mem.peak_rss_bytes);
  write_heap(w, totals);
  write_sampling(w);
  write_tracker(w);
  // Until the first update interval has passed there is no snapshot: every request reads the
  // sites as they are, with growth since start, so a new service's per-site gauges are there
  // from the first scrape.
  Snapshot early;
  const Snapshot* snap = g_snapshot;
  int64_t updated_ms = g_cold.growth_baseline_ms;
  if (!snap) {
    updated_ms = now_ms();
    take_snapshot(early, updated_ms);
    snap = &early;
  }
  w.field("update_interval_s", c.memory_metrics_update_interval)
      .field("updated_at", updated_ms / 1000)
      .field("top_sites", c.metrics_top_sites);
  write_site_list(w, "top_live", snap->live);
  write_site_list(w, "top_growth", snap->growth);
  write_modules(w);
  write_leaks(w);
  write_stack_depth(w);
  write_caches(w);
  write_scopes(w);
  w.key("profiling").begin_object().field("enabled", c.profiling_enabled).field("active", profiling_active()).end_object();
}

}  // namespace rsr::cold
