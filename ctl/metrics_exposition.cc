#include "metrics_exposition.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <cmath>
#include <optional>

#include "commands.h"
#include "format.h"
#include "site_stacks.h"

namespace rsr::ctl {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// One family per metric, created in the order they are exposed.
struct Exposition::Families {
  std::vector<std::unique_ptr<prometheus::Collectable>> order;

  template <typename T>
  Family<T>& make(const char* name, const char* help) {
    auto family = std::make_unique<Family<T>>(name, help, Labels{});
    Family<T>& ref = *family;
    order.push_back(std::move(family));
    return ref;
  }

  Family<Gauge>& usage = make<Gauge>(
      "rsr_memory_usage_bytes", "Resident set size (RSS) of the process, in bytes.");
  Family<Gauge>& peak_usage = make<Gauge>("rsr_memory_peak_usage_bytes",
                                          "Peak resident set size of the process, in bytes.");
  Family<Histogram>& scope_mb = make<Histogram>(
      "rsr_request_memory_usage_mb",
      "Megabytes allocated by the thread inside each ended scope (rsrmem C API), by scope.");
  Family<Counter>& scope_retained = make<Counter>(
      "rsr_scope_retained_bytes_total",
      "Bytes allocated and not freed by the thread inside ended scopes, by scope.");
  Family<Counter>& cache_hits = make<Counter>(
      "rsr_cache_hits_total", "Cache hits recorded through the rsrmem C API, by cache.");
  Family<Counter>& cache_misses = make<Counter>(
      "rsr_cache_misses_total", "Cache misses recorded through the rsrmem C API, by cache.");
  Family<Counter>& leaks_detected = make<Counter>(
      "rsr_memory_leaks_detected_total",
      "Leak indicators found by leak detection or recorded through the C API, by type and "
      "severity.");
  Family<Counter>& leak_checks =
      make<Counter>("rsr_leak_checks_total", "Leak detection runs since the process started.");
  Family<Gauge>& site_blocks = make<Gauge>(
      "rsr_model_instance_count",
      "Estimated live blocks of the top call sites by live bytes, by site (first user frame).");
  Family<Gauge>& site_bytes = make<Gauge>(
      "rsr_site_live_bytes",
      "Estimated live bytes of the top call sites by live bytes, by site (first user frame).");
  Family<Gauge>& site_growth = make<Gauge>(
      "rsr_object_growth_rate",
      "Growth of the top growing call sites' live memory, in bytes per second, by site.");
  Family<Gauge>& tracker_size = make<Gauge>("rsr_deletion_tracker_size",
                                            "Sampled blocks held in the tracker.");
  Family<Histogram>& stack_depth = make<Histogram>(
      "rsr_project_hierarchy_depth", "Depth of the captured allocation stacks, in frames.");
  Family<Gauge>& heap_live = make<Gauge>(
      "rsr_heap_live_bytes", "Heap bytes allocated and not yet freed (exact), in bytes.");
  Family<Gauge>& heap_blocks =
      make<Gauge>("rsr_heap_live_blocks", "Heap blocks allocated and not yet freed (exact).");
  Family<Gauge>& heap_peak =
      make<Gauge>("rsr_heap_peak_live_bytes", "Peak of the live heap since start, in bytes.");
  Family<Counter>& allocations =
      make<Counter>("rsr_allocations_total", "Allocations since the process started.");
  Family<Counter>& frees = make<Counter>("rsr_frees_total", "Frees since the process started.");
  Family<Counter>& allocated_bytes = make<Counter>(
      "rsr_allocated_bytes_total", "Bytes allocated since the process started.");
  Family<Counter>& freed_bytes =
      make<Counter>("rsr_freed_bytes_total", "Bytes freed since the process started.");
  Family<Gauge>& tracker_bytes = make<Gauge>(
      "rsr_tracker_bytes", "Memory used by rsrmem itself inside the process, in bytes.");
  Family<Counter>& samples =
      make<Counter>("rsr_samples_total", "Allocations sampled with their stacks.");
  Family<Counter>& dropped_samples = make<Counter>(
      "rsr_dropped_samples_total",
      "Samples the tracker's tables could not hold, by table: blocks (not counted live), sites (no "
      "call site of their own; counted in an unattributed bucket).");
  Family<Gauge>& unattributed = make<Gauge>(
      "rsr_unattributed_live_bytes",
      "Estimated live bytes allocated at call sites beyond the site table's capacity (RSR_MAX_SITES).");
  Family<Gauge>& sites = make<Gauge>("rsr_sites", "Call sites in the tracker's site table.");
  Family<Gauge>& profiling_active =
      make<Gauge>("rsr_profiling_active", "Profiling captures in progress.");
  Family<Gauge>& start_time = make<Gauge>(
      "rsr_process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.");
  Family<Gauge>& updated_at = make<Gauge>(
      "rsr_metrics_updated_timestamp_seconds",
      "When the call-site figures were last refreshed, since the Unix epoch, in seconds.");
  Family<Gauge>& info = make<Gauge>(
      "rsr_info", "The monitored process's rsrmem version, program and mode (always 1).");
  Family<Gauge>& exited = make<Gauge>(
      "rsr_process_exited", "1 once the process launched by rsrmemctl run has exited, else 0.");
  Family<Gauge>& exit_code = make<Gauge>(
      "rsr_process_exit_code",
      "Exit status of the process launched by rsrmemctl run (128+N when killed by signal N).");
};

namespace {

Labels with(Labels labels, const char* name, const std::string& value) {
  labels[name] = value;
  return labels;
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Non-negative finite figures only: a counter never goes down and a missing field reads as 0.
double count(const Json& j, const char* key) {
  const double v = num(j, key);
  return std::isfinite(v) && v > 0 ? v : 0;
}

std::optional<std::vector<double>> doubles(const Json& list) {
  if (!list.is_array()) return std::nullopt;
  std::vector<double> out;
  for (const Json& v : list) {
    if (!v.is_number() || !std::isfinite(v.get<double>())) return std::nullopt;
    out.push_back(v.get<double>());
  }
  return out;
}

// Bucket bounds (strictly increasing) and per-bucket counts (one more than the bounds), as sent;
// nullopt when the reply's figures do not make a histogram.
struct Buckets {
  std::vector<double> bounds;
  std::vector<double> counts;
};
std::optional<Buckets> buckets_of(const Json& bounds_json, const Json& counts_json) {
  auto bounds = doubles(bounds_json);
  auto counts = doubles(counts_json);
  if (!bounds || !counts || counts->size() != bounds->size() + 1) return std::nullopt;
  for (size_t i = 1; i < bounds->size(); ++i)
    if (!((*bounds)[i - 1] < (*bounds)[i])) return std::nullopt;
  for (double c : *counts)
    if (c < 0) return std::nullopt;
  return Buckets{std::move(*bounds), std::move(*counts)};
}

void observe(Family<Histogram>& family, const Labels& labels, const Buckets& b, double sum) {
  family.Add(labels, b.bounds).ObserveMultiple(b.counts, std::isfinite(sum) ? sum : 0);
}

// The reply's site list, at most `limit` sites (0: all), each named by its user frame, with
// `value` summed over the sites that share a name.
std::map<std::string, double> by_site(const Json& list, size_t limit, const char* value,
                                      Symbolizer& symbolizer) {
  std::map<std::string, double> out;
  if (!list.is_array()) return out;
  size_t taken = 0;
  for (const Json& site : list) {
    if (limit > 0 && taken == limit) break;
    if (!site.is_object()) continue;
    ++taken;
    std::string name = user_frame_label(first_user_frame(symbolize_site(site, symbolizer)));
    if (name.empty()) name = "unknown";
    const double v = num(site, value);
    out[name] += std::isfinite(v) ? v : 0;
  }
  return out;
}

}  // namespace

std::string job_of(const Json& reply) {
  std::string job = str(reply, "service");
  if (job.empty()) job = base_name(str(reply, "program"));
  return job.empty() ? "rsrmem" : job;
}

std::string local_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

const InstanceNames::Given& InstanceNames::give(const std::string& job, long long pid) {
  auto [it, fresh] = given_.try_emplace({job, pid});
  if (fresh) {
    const int n = ++per_job_[job];
    it->second = Given{n, n == 1 ? host_ : host_ + "/" + std::to_string(n)};
  }
  return it->second;
}

const std::string& InstanceNames::of(const std::string& job, long long pid) {
  return give(job, pid).name;
}

int InstanceNames::ordinal(const std::string& job, long long pid) { return give(job, pid).ordinal; }

Exposition::Exposition(ExpositionOptions options)
    : options_(std::move(options)),
      names_(options_.hostname.empty() ? local_hostname() : options_.hostname),
      families_(std::make_unique<Families>()) {
  if (options_.hostname.empty()) options_.hostname = local_hostname();
}

Exposition::~Exposition() = default;

std::string Exposition::job_for(const Json& reply) const {
  return options_.job.empty() ? job_of(reply) : options_.job;
}

std::string Exposition::instance_of(const Json& reply) {
  if (!options_.instance.empty()) return options_.instance;
  return names_.of(job_for(reply), static_cast<long long>(num(reply, "pid")));
}

Labels Exposition::base_labels(const Json& reply) {
  return Labels{{"job", job_for(reply)}, {"instance", instance_of(reply)}};
}

void Exposition::add(const Json& reply) {
  const auto pid = static_cast<pid_t>(num(reply, "pid"));
  set_allocator_wrappers(str(reply, "allocator_wrappers"));
  Symbolizer symbolizer(modules_of(reply), pid > 0 ? std::optional<pid_t>(pid) : std::nullopt);
  add(reply, symbolizer);
}

void Exposition::add(const Json& reply, Symbolizer& symbolizer) {
  Families& f = *families_;
  const Labels base = base_labels(reply);
  const Json& heap = member(reply, "heap");
  const Json& sampling = member(reply, "sampling");

  f.usage.Add(base).Set(num(reply, "rss_bytes"));
  f.peak_usage.Add(base).Set(num(reply, "peak_rss_bytes"));

  const Json& scopes = member(reply, "scopes");
  for (const Json& scope : member(scopes, "entries")) {
    const Labels labels = with(base, "scope", str(scope, "name", "unknown"));
    if (auto b = buckets_of(member(scopes, "bounds_mb"), member(scope, "counts")))
      observe(f.scope_mb, labels, *b, num(scope, "sum_mb"));
    f.scope_retained.Add(labels).Increment(count(scope, "retained_bytes"));
  }

  const Json& caches = member(reply, "caches");
  const Json& enabled = member(caches, "enabled");
  if (!enabled.is_boolean() || enabled.get<bool>()) {
    for (const Json& cache : member(caches, "entries")) {
      const Labels labels = with(base, "cache", str(cache, "name", "unknown"));
      f.cache_hits.Add(labels).Increment(count(cache, "hits"));
      f.cache_misses.Add(labels).Increment(count(cache, "misses"));
    }
  }

  const Json& leaks = member(reply, "leaks");
  const Json& detected = member(leaks, "detected");
  for (auto type = detected.begin(); type != detected.end(); ++type) {
    for (auto severity = type->begin(); severity != type->end(); ++severity) {
      if (!severity->is_number() || !type->is_object()) continue;
      const Labels labels =
          with(with(base, "type", type.key()), "severity", lowercase(severity.key()));
      const double n = severity->get<double>();
      f.leaks_detected.Add(labels).Increment(std::isfinite(n) && n > 0 ? n : 0);
    }
  }
  if (leaks.contains("checks")) f.leak_checks.Add(base).Increment(count(leaks, "checks"));

  const double top = num(reply, "top_sites");
  const size_t limit = top >= 1 ? static_cast<size_t>(top) : 0;
  const Json& live = member(reply, "top_live");
  for (const auto& [site, blocks] : by_site(live, limit, "live_blocks", symbolizer))
    f.site_blocks.Add(with(base, "site", site)).Set(blocks);
  for (const auto& [site, bytes] : by_site(live, limit, "live_bytes", symbolizer))
    f.site_bytes.Add(with(base, "site", site)).Set(bytes);
  for (const auto& [site, rate] :
       by_site(member(reply, "top_growth"), limit, "growth_bytes_per_s", symbolizer))
    f.site_growth.Add(with(base, "site", site)).Set(rate);

  f.tracker_size.Add(base).Set(num(sampling, "tracked_blocks"));

  const Json& depth = member(reply, "stack_depth");
  if (auto b = buckets_of(member(depth, "bounds"), member(depth, "counts")))
    observe(f.stack_depth, base, *b, num(depth, "sum"));

  f.heap_live.Add(base).Set(num(heap, "live_bytes"));
  f.heap_blocks.Add(base).Set(num(heap, "live_blocks"));
  f.heap_peak.Add(base).Set(num(heap, "peak_live_bytes"));
  f.allocations.Add(base).Increment(count(heap, "allocations"));
  f.frees.Add(base).Increment(count(heap, "frees"));
  f.allocated_bytes.Add(base).Increment(count(heap, "allocated_bytes"));
  f.freed_bytes.Add(base).Increment(count(heap, "freed_bytes"));
  f.tracker_bytes.Add(base).Set(num(member(reply, "tracker"), "bytes"));
  f.samples.Add(base).Increment(count(sampling, "samples"));
  f.dropped_samples.Add(with(base, "table", "blocks")).Increment(count(sampling, "dropped_samples"));
  f.dropped_samples.Add(with(base, "table", "sites")).Increment(count(sampling, "dropped_sites"));
  f.unattributed.Add(base).Set(num(sampling, "unattributed_live_bytes"));
  f.sites.Add(base).Set(num(sampling, "sites"));
  f.profiling_active.Add(base).Set(num(member(reply, "profiling"), "active"));
  f.start_time.Add(base).Set(num(reply, "start_time"));
  if (reply.contains("updated_at")) f.updated_at.Add(base).Set(num(reply, "updated_at"));

  Labels info = base;
  info["version"] = str(reply, "version", "unknown");
  info["program"] = str(reply, "program", "unknown");
  info["mode"] = str(reply, "mode", str(sampling, "mode", "unknown"));
  info["pid"] = std::to_string(static_cast<long long>(num(reply, "pid")));
  f.info.Add(info).Set(1);
}

void Exposition::add_process_state(const Json& reply, bool exited, int exit_code) {
  const Labels base = base_labels(reply);
  families_->exited.Add(base).Set(exited ? 1 : 0);
  if (exited) families_->exit_code.Add(base).Set(exit_code);
}

std::vector<prometheus::MetricFamily> Exposition::families() const {
  std::vector<prometheus::MetricFamily> out;
  for (const auto& family : families_->order)
    for (prometheus::MetricFamily& m : family->Collect())
      if (!m.metric.empty()) out.push_back(std::move(m));
  return out;
}

std::string Exposition::text() const { return prometheus::TextSerializer().Serialize(families()); }


}  // namespace rsr::ctl
