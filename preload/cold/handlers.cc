// Request handlers of the control protocol (see common/protocol.md for every reply's fields)
// and the once-a-second tick. Run on the control thread with g_cold.mutex held.
#include "handlers.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "../../common/json.h"
#include "../hot/private.h"
#include "../hot/stack.h"
#include "../hot/tables.h"
#include "../hot/unwind.h"
#include "ages.h"
#include "leaks.h"
#include "metrics.h"
#include "modules.h"
#include "private_libs.h"
#include "proc.h"
#include "profiling.h"
#include "state.h"
#include "tracking.h"
#include "unwinder_pipe.h"

namespace rsr::cold {
namespace {

constexpr const char* kVersion = "0.1.0";
// rsrmemctl reads replies up to 64 MiB: a heap profile whose size could pass that is refused.
constexpr uint64_t kMaxHeapProfileBytes = uint64_t{60} << 20;

void hex_address(Writer& w, uintptr_t a) {
  char buf[24] = "0x";
  const auto r = std::to_chars(buf + 2, buf + sizeof buf, a, 16);
  w.value(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

}  // namespace

void common_fields(Writer& w) {
  w.field("ok", true)
      .field("pid", static_cast<int64_t>(g_cold.pid))
      .field("program", g_cold.program)
      .field("service", g_cold.service)
      .field("version", kVersion)
      .field("protocol", static_cast<int>(proto::kProtocolVersion));
}

double uptime_s() { return static_cast<double>(monotonic_ms() - g_cold.start_mono_ms) / 1000.0; }

void write_cmdline(Writer& w) {
  char cmdline[8192];
  const size_t n = read_cmdline(cmdline, sizeof cmdline);
  w.key("cmdline").begin_array();
  for (size_t i = 0; i < n;) {
    const size_t len = strnlen(cmdline + i, n - i);
    w.value(std::string_view(cmdline + i, len));
    i += len + 1;
  }
  w.end_array();
}

namespace {

void identity(Writer& w) {
  common_fields(w);
  write_cmdline(w);
  w.field("start_time", g_cold.start_ms / 1000)
      .field("uptime_s", uptime_s())
      .field("socket", g_cold.socket_path)
      .field("mode", mode_name());
}

// Sampled live blocks: the block table also holds the engine's private blocks.
uint64_t sampled_blocks() {
  const uint64_t all = hot::g_tables.block_count.load();
  const uint64_t mine = hot::g_private_blocks.load();
  return all > mine ? all - mine : 0;
}

}  // namespace

// `samples`: hot::samples_taken(), summed once by the caller over the sites.
bool estimates_ok(uint64_t samples, char* why, size_t cap) {
  const hot::Tables& t = hot::g_tables;
  const hot::Totals totals = hot::read_totals();
  const uint64_t live = totals.alloc_bytes > totals.free_bytes ? totals.alloc_bytes - totals.free_bytes : 0;
  const int64_t unattributed = t.overflow.live_bytes.load(std::memory_order_relaxed);
  const uint64_t untracked = t.dropped_samples.load();
  // Call sites beyond the table's capacity share one unnamed bucket: once it holds a tenth of
  // the live heap, per-site figures and leak naming miss what matters.
  if (unattributed > 0 && live > 0 && static_cast<uint64_t>(unattributed) * 10 >= live) {
    snprintf(why, cap,
             "%.1f MiB of the %.1f MiB live (%.0f%%) was allocated at call sites beyond the site table's "
             "capacity (RSR_MAX_SITES=%lld) and cannot be attributed: per-site figures and leak naming "
             "miss it; raise RSR_MAX_SITES",
             static_cast<double>(unattributed) / 1048576.0, static_cast<double>(live) / 1048576.0,
             100.0 * static_cast<double>(unattributed) / static_cast<double>(live),
             static_cast<long long>(g_cold.config.max_sites));
    return false;
  }
  // Samples whose block found no room are not counted live at all.
  if (untracked > 0 && untracked * 100 >= samples) {
    snprintf(why, cap,
             "%llu of %llu samples (%.1f%%) were not tracked because the block table is full "
             "(RSR_MAX_TRACKED_BLOCKS=%lld): live estimates undercount; raise RSR_MAX_TRACKED_BLOCKS",
             static_cast<unsigned long long>(untracked), static_cast<unsigned long long>(samples),
             100.0 * static_cast<double>(untracked) / static_cast<double>(samples ? samples : 1),
             static_cast<long long>(g_cold.config.max_tracked_blocks));
    return false;
  }
  snprintf(why, cap, "%llu samples, %llu of %llu call sites", static_cast<unsigned long long>(samples),
           static_cast<unsigned long long>(t.site_count.load()), static_cast<unsigned long long>(t.max_sites));
  return true;
}

void write_sampling(Writer& w) {
  const hot::Tables& t = hot::g_tables;
  char why[512];
  const uint64_t samples = hot::samples_taken();
  const bool ok = estimates_ok(samples, why, sizeof why);
  w.key("sampling").begin_object()
      .field("mode", mode_name())
      .field("interval_bytes", g_cold.config.memory_detailed_tracking ? uint64_t{0} : hot::g_engine.interval)
      .field("stack_depth", hot::g_stack.depth)
      .field("samples", samples)
      .field("tracked_blocks", sampled_blocks())
      .field("max_tracked_blocks", t.max_blocks)
      .field("sites", t.site_count.load())
      .field("max_sites", t.max_sites)
      .field("dropped_samples", t.dropped_samples.load())
      .field("dropped_sites", t.dropped_sites.load())
      .field("unattributed_live_bytes", std::max<int64_t>(0, t.overflow.live_bytes.load()))
      .field("unattributed_samples", t.overflow.samples.load());
  const hot::WalkCounts walks = hot::walk_counts();
  w.field("unwind_rules", walks.rules).field("stacks_left_to_libunwind", walks.gave_up);
  w.key("estimates").begin_object().field("status", ok ? "ok" : "degraded").field("detail", why).end_object();
  w.end_object();
}

void write_tracker(Writer& w) {
  const size_t heap = private_heap_bytes();
  const size_t tables = hot::tables_resident_bytes();
  w.key("tracker").begin_object()
      .field("bytes", static_cast<uint64_t>(heap + tables))
      .field("heap_bytes", static_cast<uint64_t>(heap))
      .field("tables_bytes", static_cast<uint64_t>(tables))
      .end_object();
}

namespace {
// Live figures from totals read without a global lock: a free counted on one thread can be read
// before its allocation on another, so clamp the transient difference at zero.
uint64_t live_of(uint64_t added, uint64_t removed) { return added > removed ? added - removed : 0; }
}  // namespace

void write_heap(Writer& w, const hot::Totals& t) {
  w.key("heap").begin_object()
      .field("live_bytes", live_of(t.alloc_bytes, t.free_bytes))
      .field("live_blocks", live_of(t.allocs, t.frees))
      .field("peak_live_bytes", t.peak_live_bytes)
      .field("allocations", t.allocs)
      .field("frees", t.frees)
      .field("allocated_bytes", t.alloc_bytes)
      .field("freed_bytes", t.free_bytes)
      .end_object();
}

namespace {

void component(Writer& w, const char* name, const char* status, const char* detail) {
  w.key(name).begin_object().field("status", status).field("detail", detail).end_object();
}

// The tracking component: the engine runs and its hooks see the program's allocations.
bool write_tracking(Writer& w) {
  char why[512];
  const bool active = hot::g_engine.mode.load() == hot::kActive;
  const bool ok = active && tracking_ok(why, sizeof why);
  if (!active) snprintf(why, sizeof why, "engine is not active");
  component(w, "tracking", ok ? "ok" : "degraded", why);
  return ok;
}

void handle_status(Writer& w) {
  identity(w);
  write_tracking(w);
  w.key("config").begin_object();
  size_t count = 0;
  const SettingInfo* rows = settings(&count);
  for (size_t i = 0; i < count; ++i) {
    char value[kPathMax];
    format_setting(g_cold.config, rows[i].env, value, sizeof value);
    w.field(rows[i].env, value);
  }
  w.end_object();
  w.key("config_warnings").begin_array();
  for (int i = 0; i < g_cold.warning_count; ++i) w.value(g_cold.warnings[i]);
  w.end_array();
  write_sampling(w);
  write_tracker(w);
  write_profilers(w);
  write_leak_status(w);
  w.field("threads", static_cast<uint64_t>(hot::read_totals().threads));
}

void handle_health(Writer& w) {
  common_fields(w);
  // Components first, the verdict after them: the writer emits keys in order and readers look
  // them up by name.
  w.key("components").begin_object();
  bool healthy = write_tracking(w);
  const bool unwinder_ok = g_cold.unwinder != ColdState::Unwinder::kFailed;
  healthy = healthy && g_cold.heap_ok && unwinder_ok && g_cold.socket_ok;
  component(w, "stack_capture", unwinder_ok ? "ok" : "degraded",
            g_cold.unwinder == ColdState::Unwinder::kLoaded ? "own walker; libunwind loaded for the stacks it leaves"
            : unwinder_ok ? "own walker; libunwind not needed so far"
                          : "libunwind.so.8 could not be loaded: the stacks the walker leaves to it carry no frames");
  component(w, "private_heap", g_cold.heap_ok ? "ok" : "degraded",
            g_cold.heap_ok ? "mimalloc loaded" : "libmimalloc.so.2 could not be loaded");
  component(w, "control_socket", "ok", g_cold.socket_path);
  char estimates[512];
  const bool estimates_good = estimates_ok(hot::samples_taken(), estimates, sizeof estimates);
  healthy = healthy && estimates_good;
  component(w, "sampling", estimates_good ? "ok" : "degraded", estimates);
  if (g_cold.config.leak_detection_enabled) {
    char detail[128];
    snprintf(detail, sizeof detail, "every %lld s, %llu checks so far",
             static_cast<long long>(g_cold.config.leak_check_interval),
             static_cast<unsigned long long>(leak_checks()));
    component(w, "leak_detection", "ok", detail);
  } else {
    component(w, "leak_detection", "disabled", "RSR_LEAK_DETECTION_ENABLED=false");
  }
  if (g_cold.config.prometheus_metrics_enabled) component(w, "prometheus_metrics", "ok", "metrics request served");
  else component(w, "prometheus_metrics", "disabled", "RSR_PROMETHEUS_METRICS_ENABLED=false");
  if (g_cold.config.profiling_enabled) {
    component(w, "profiling", "ok", profiling_active() ? "a background capture is running" : "ready, no capture running");
  } else {
    component(w, "profiling", "disabled", "RSR_PROFILING_ENABLED=false");
  }
  w.end_object();
  w.field("status", healthy ? "healthy" : "degraded");
}

}  // namespace

SiteFigures read_site(uint32_t index, double window_s) {
  const hot::Site& s = hot::site_at(index);
  const auto blocks = [](int64_t fp) { return (fp + static_cast<int64_t>(hot::kBlockScale) / 2) /
                                              static_cast<int64_t>(hot::kBlockScale); };
  SiteFigures f;
  f.index = index;
  f.live_bytes = s.live_bytes.load(std::memory_order_relaxed);
  f.live_blocks = blocks(s.live_blocks_fp.load(std::memory_order_relaxed));
  f.alloc_bytes = s.alloc_bytes.load(std::memory_order_relaxed);
  f.alloc_blocks = blocks(static_cast<int64_t>(s.alloc_blocks_fp.load(std::memory_order_relaxed)));
  f.samples = s.samples.load(std::memory_order_relaxed);
  f.live_samples = s.live_samples.load(std::memory_order_relaxed);
  f.growth_bytes = f.live_bytes - s.baseline_live_bytes;
  f.growth_bytes_per_s = window_s > 0 ? static_cast<double>(f.growth_bytes) / window_s : 0.0;
  return f;
}

void write_site(Writer& w, const SiteFigures& f, const AgeProfile* age) {
  w.begin_object()
      .field("id", static_cast<uint64_t>(f.index))
      .field("live_bytes", f.live_bytes)
      .field("live_blocks", f.live_blocks)
      .field("alloc_bytes", f.alloc_bytes)
      .field("alloc_blocks", f.alloc_blocks)
      .field("samples", f.samples)
      .field("live_samples", f.live_samples)
      .field("growth_bytes", f.growth_bytes)
      .field("growth_bytes_per_s", f.growth_bytes_per_s);
  if (age) write_age(w, *age);
  write_frames(w, f.index);
  w.end_object();
}

void write_frames(Writer& w, uint32_t index) {
  w.key("frames").begin_array();
  const hot::Site& s = hot::site_at(index);
  if (index != hot::kNoSite && s.ready.load(std::memory_order_acquire)) {
    const uintptr_t* frames = hot::g_tables.pool + s.frames_at;
    for (uint32_t i = 0; i < s.depth; ++i) hex_address(w, frames[i]);
  }
  w.end_array();
}

void write_site(Writer& w, uint32_t index, double window_s) { write_site(w, read_site(index, window_s)); }

void write_modules(Writer& w) {
  w.field("allocator_wrappers", g_cold.config.allocator_wrappers);
  refresh_modules();
  w.key("modules").begin_array();
  for (const Module& m : modules()) {
    w.begin_object().field("path", std::string_view(m.path)).field("build_id", std::string_view(m.build_id));
    w.key("base");
    hex_address(w, m.base);
    w.key("start");
    hex_address(w, m.start);
    w.key("end");
    hex_address(w, m.end);
    w.field("loaded", m.loaded).end_object();
  }
  w.end_array();
}

namespace {

// The rolling growth baseline of `summary`: every site's live bytes, taken every leak check
// interval (at most a minute); growth is against the older of the last two takes, so it covers
// the last one to two intervals (since start while the process is younger), not everything
// since start.
int64_t roll_ms() { return std::min<int64_t>(60000, g_cold.config.leak_check_interval * 1000); }
struct Rolling {
  Vector<int64_t> older, newer;
  int64_t older_ms = 0, newer_ms = 0;  // realtime of the takes (start: everything was 0)
  int64_t newer_mono_ms = 0;
};
Rolling* g_rolling = nullptr;

Rolling& rolling() {
  if (!g_rolling) {
    g_rolling = heap_new<Rolling>();
    g_rolling->older_ms = g_rolling->newer_ms = g_cold.start_ms;
    g_rolling->newer_mono_ms = g_cold.start_mono_ms;
  }
  return *g_rolling;
}

void rolling_tick(int64_t now_mono_ms) {
  Rolling& r = rolling();
  const hot::Tables& t = hot::g_tables;
  if (now_mono_ms - r.newer_mono_ms < roll_ms() || !t.sites) return;
  r.older.swap(r.newer);
  r.older_ms = r.newer_ms;
  r.newer.assign(hot::site_slots(), 0);
  hot::each_site([&](uint32_t i) { r.newer[i] = t.sites[i].live_bytes.load(std::memory_order_relaxed); });
  r.newer_ms = now_ms();
  r.newer_mono_ms = now_mono_ms;
}

int64_t rolling_baseline(uint32_t index) {
  const Rolling& r = rolling();
  return index < r.older.size() ? r.older[index] : 0;
}

struct SiteRow {
  uint32_t index;
  int64_t live_bytes;
  int64_t growth;
};

Vector<SiteRow> collect_sites(bool roll) {
  Vector<SiteRow> rows;
  const hot::Tables& t = hot::g_tables;
  if (!t.sites) return rows;
  rows.reserve(t.site_count.load());
  hot::each_site([&](uint32_t i) {
    const hot::Site& s = t.sites[i];
    if (!s.ready.load(std::memory_order_acquire)) return;
    const int64_t live = s.live_bytes.load(std::memory_order_relaxed);
    const int64_t base = roll ? rolling_baseline(i) : s.baseline_live_bytes;
    rows.push_back({i, live, live - base});
  });
  return rows;
}

}  // namespace

void top_sites(size_t top, Vector<uint32_t>& by_live, Vector<uint32_t>& by_growth, bool roll) {
  Vector<SiteRow> rows = collect_sites(roll);
  const size_t n = std::min(top, rows.size());
  const auto mid = rows.begin() + static_cast<std::ptrdiff_t>(n);
  std::partial_sort(rows.begin(), mid, rows.end(),
                    [](const SiteRow& a, const SiteRow& b) { return a.live_bytes > b.live_bytes; });
  by_live.clear();
  for (size_t i = 0; i < n && rows[i].live_bytes > 0; ++i) by_live.push_back(rows[i].index);
  std::partial_sort(rows.begin(), mid, rows.end(),
                    [](const SiteRow& a, const SiteRow& b) { return a.growth > b.growth; });
  by_growth.clear();
  for (size_t i = 0; i < n && rows[i].growth > 0; ++i) by_growth.push_back(rows[i].index);
}

namespace {

void write_rates(Writer& w) {
  w.key("rates").begin_object();
  if (g_cold.rate_count < 2) {
    w.field("window_s", 0).field("allocations_per_s", 0.0).field("frees_per_s", 0.0)
        .field("allocated_bytes_per_s", 0.0).field("live_bytes_per_s", 0.0);
  } else {
    const RatePoint& newest = g_cold.rates[(g_cold.rate_next + kRateWindow - 1) % kRateWindow];
    const RatePoint& oldest =
        g_cold.rates[g_cold.rate_count < kRateWindow ? 0 : g_cold.rate_next % kRateWindow];
    const double dt = static_cast<double>(newest.t_ms - oldest.t_ms) / 1000.0;
    const auto per_s = [dt](uint64_t a, uint64_t b) { return dt > 0 ? static_cast<double>(a - b) / dt : 0.0; };
    const double live_new = static_cast<double>(newest.totals.alloc_bytes) - static_cast<double>(newest.totals.free_bytes);
    const double live_old = static_cast<double>(oldest.totals.alloc_bytes) - static_cast<double>(oldest.totals.free_bytes);
    w.field("window_s", dt)
        .field("allocations_per_s", per_s(newest.totals.allocs, oldest.totals.allocs))
        .field("frees_per_s", per_s(newest.totals.frees, oldest.totals.frees))
        .field("allocated_bytes_per_s", per_s(newest.totals.alloc_bytes, oldest.totals.alloc_bytes))
        .field("live_bytes_per_s", dt > 0 ? (live_new - live_old) / dt : 0.0);
  }
  w.end_object();
}

void handle_summary(int64_t top, Writer& w) {
  common_fields(w);
  const MemoryFacts mem = read_memory_facts();
  w.field("rss_bytes", mem.rss_bytes).field("peak_rss_bytes", mem.peak_rss_bytes).field("uptime_s", uptime_s());
  write_heap(w, hot::read_totals());
  write_rates(w);
  write_sampling(w);
  write_tracker(w);
  const double window_s = static_cast<double>(now_ms() - rolling().older_ms) / 1000.0;
  w.field("growth_window_s", window_s);
  const auto figures = [window_s](uint32_t i) {
    SiteFigures f = read_site(i, window_s);
    f.growth_bytes = f.live_bytes - rolling_baseline(i);
    f.growth_bytes_per_s = window_s > 0 ? static_cast<double>(f.growth_bytes) / window_s : 0.0;
    return f;
  };

  Vector<uint32_t> by_live, by_growth;
  top_sites(static_cast<size_t>(top), by_live, by_growth, /*rolling=*/true);
  Vector<uint32_t> listed(by_live);
  listed.insert(listed.end(), by_growth.begin(), by_growth.end());
  const Vector<AgeProfile> ages = site_ages(listed);
  size_t next = 0;
  w.key("top_live").begin_array();
  for (uint32_t i : by_live) write_site(w, figures(i), &ages[next++]);
  w.end_array();
  w.key("top_growth").begin_array();
  for (uint32_t i : by_growth) write_site(w, figures(i), &ages[next++]);
  w.end_array();
  write_modules(w);
}

// Every call site with its four estimates (the sampler's unbiased sums, rounded), for a heap
// profile. Stacks share most of their frames, so the addresses travel once, in "addresses", and
// a site's "frames" are indices into it.
void handle_heap_profile(Writer& w) {
  common_fields(w);
  w.field("time_ms", now_ms()).field("uptime_s", uptime_s());
  write_sampling(w);
  const hot::Tables& t = hot::g_tables;
  Vector<uint32_t> sites;
  Vector<uintptr_t> addresses;
  hot::each_site([&](uint32_t i) {
    const hot::Site& s = t.sites[i];
    if (!s.ready.load(std::memory_order_acquire)) return;
    sites.push_back(i);
    const uintptr_t* frames = t.pool + s.frames_at;
    addresses.insert(addresses.end(), frames, frames + s.depth);
  });
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  const auto figures = [&w](const SiteFigures& f) {
    w.field("live_bytes", f.live_bytes).field("live_blocks", f.live_blocks)
        .field("alloc_bytes", f.alloc_bytes).field("alloc_blocks", f.alloc_blocks)
        .field("samples", f.samples);
  };
  w.key("sites").begin_array();
  for (uint32_t i : sites) {
    const SiteFigures f = read_site(i, 0);
    w.begin_object().field("id", static_cast<uint64_t>(i));
    figures(f);
    w.key("frames").begin_array();
    const hot::Site& s = t.sites[i];
    const uintptr_t* frames = t.pool + s.frames_at;
    for (uint32_t k = 0; k < s.depth; ++k)
      w.value(static_cast<uint64_t>(std::lower_bound(addresses.begin(), addresses.end(), frames[k]) -
                                    addresses.begin()));
    w.end_array().end_object();
  }
  w.end_array();
  w.key("unattributed").begin_object();
  figures(read_site(hot::kNoSite, 0));
  w.end_object();
  w.key("addresses").begin_array();
  for (uintptr_t a : addresses) hex_address(w, a);
  w.end_array();
  write_modules(w);
}

void handle_update_metrics(Writer& w) {
  common_fields(w);
  // Snapshot and publication first, so the tick does not take them a moment earlier.
  const uint64_t sites = refresh_sites();
  publish_caches();
  tick();
  w.field("updated_at", now_ms() / 1000).field("sites", sites);
}

proto::Kind refuse(String& out, const char* message) {
  out.clear();
  Writer e(out);
  e.begin_object().field("ok", false).field("error", message).end_object();
  return proto::Kind::kError;
}

// An optional integer argument: absent leaves *out as it is; present must be an integer in range.
bool int_argument(std::string_view req, std::string_view name, int64_t lo, int64_t hi, int64_t* out) {
  const json::Value v = json::json_get(req, name);
  if (v.type == json::Type::kNone) return true;
  int64_t x = 0;
  if (!json::json_int(v, &x) || x < lo || x > hi) return false;
  *out = x;
  return true;
}

}  // namespace

proto::Kind handle_request(std::string_view req, String& out) {
  char cmd[64];
  Writer w(out);
  if (!json::json_string(json::json_get(req, "cmd"), cmd, sizeof cmd)) cmd[0] = '\0';
  w.begin_object();
  if (std::strcmp(cmd, "hello") == 0) identity(w);
  else if (std::strcmp(cmd, "status") == 0) handle_status(w);
  else if (std::strcmp(cmd, "health") == 0) handle_health(w);
  else if (std::strcmp(cmd, "summary") == 0) {
    int64_t top = 20;
    if (!int_argument(req, "top", 0, 1000, &top)) return refuse(out, "bad argument: \"top\" must be an integer from 0 to 1000");
    handle_summary(top, w);
  } else if (std::strcmp(cmd, "heap_profile") == 0) {
    // A reply past what rsrmemctl reads (64 MiB) is refused before it is built: building it
    // would hold the control mutex (a fork or dlclose in the program waits for it) for nothing.
    const uint64_t frames = hot::g_tables.pool_used.load();
    const uint64_t sites = hot::g_tables.site_count.load();
    const uint64_t bound = frames * 28 + sites * 160 + 4096;
    if (bound > kMaxHeapProfileBytes) {
      char msg[256];
      snprintf(msg, sizeof msg,
               "heap profile too large: %llu call sites with %llu frames (up to %llu MiB; replies stop "
               "at %llu MiB): lower RSR_MAX_SITES or RSR_STACK_DEPTH",
               static_cast<unsigned long long>(sites), static_cast<unsigned long long>(frames),
               static_cast<unsigned long long>(bound >> 20),
               static_cast<unsigned long long>(kMaxHeapProfileBytes >> 20));
      return refuse(out, msg);
    }
    handle_heap_profile(w);
  } else if (std::strcmp(cmd, "metrics") == 0) {
    if (!g_cold.config.prometheus_metrics_enabled)
      return refuse(out, "metrics are disabled (RSR_PROMETHEUS_METRICS_ENABLED=false)");
    write_metrics(w);
  } else if (std::strcmp(cmd, "update_metrics") == 0) {
    handle_update_metrics(w);
  } else if (std::strcmp(cmd, "check_leaks") == 0) {
    if (!g_cold.config.leak_detection_enabled)
      return refuse(out, "leak detection is disabled (RSR_LEAK_DETECTION_ENABLED=false)");
    if (!leaks_running()) return refuse(out, "leak detection could not start (out of memory)");
    common_fields(w);
    write_sampling(w);
    write_leak_report(w);
  } else if (std::strcmp(cmd, "start_profiling") == 0) {
    double duration = 0;
    const json::Value v = json::json_get(req, "duration_s");
    if (!json::json_double(v, &duration))
      return refuse(out, "bad argument: \"duration_s\" must be a number of seconds above 0 and at most 604800 (7 days)");
    char err[kPathMax + 256];
    common_fields(w);
    if (!profiling_start(duration, w, err, sizeof err)) return refuse(out, err);
  } else if (std::strcmp(cmd, "stop_profiling") == 0) {
    const json::Value v = json::json_get(req, "id");
    char id[256] = "";
    if (v.type != json::Type::kNone && !json::json_string(v, id, sizeof id)) return refuse(out, "invalid profile id");
    char err[512];
    common_fields(w);
    if (!profiling_stop(id, v.type != json::Type::kNone, w, err, sizeof err)) return refuse(out, err);
  } else {
    char msg[128];
    snprintf(msg, sizeof msg, "unknown command \"%.64s\"", cmd);
    return refuse(out, msg);
  }
  w.end_object();
  return proto::Kind::kResponse;
}

void tick() {
  RatePoint& p = g_cold.rates[g_cold.rate_next];
  p.t_ms = monotonic_ms();
  p.totals = hot::read_totals();
  g_cold.rate_next = (g_cold.rate_next + 1) % kRateWindow;
  if (g_cold.rate_count < kRateWindow) ++g_cold.rate_count;
  refresh_modules();
  metrics_tick(p.t_ms);
  rolling_tick(p.t_ms);
  tracking_tick();
  unwinder_pipe_tick();
}

}  // namespace rsr::cold
