// The C API (preload/include/rsrmem.h) end to end: a C and a C++ program that use it run without
// the library (nothing changes, nothing is linked) and under it (the `metrics` reply carries what
// they recorded, exactly).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "harness.h"

namespace {

using nlohmann::json;
using rt::Process;
using rt::run_text;
using rt::Reply;
using rt::Spawn;
using rt::TempDir;

constexpr int kLineMs = 15000;
constexpr int kSocketMs = 10000;
constexpr double kMiB = 1024.0 * 1024.0;

// Bucket of the scope histogram that holds 3 MiB: (2.5, 5] MB.
constexpr int kBucket3MiB = 7;

// A program under the library, its socket up and its first line read.
struct Monitored {
  TempDir dir;
  Process p;
  std::string first;

  Monitored(const std::string& program, std::map<std::string, std::string> env = {}) {
    Spawn s;
    s.argv = {rt::program(program)};
    s.socket_dir = dir.path();
    s.env = std::move(env);
    p = Process(s);
    EXPECT_TRUE(p.started());
    auto line = p.read_line(kLineMs);
    first = line.value_or("");
    Reply hello;
    EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
  }

  Reply ask(const std::string& request) { return rt::query(rt::socket_path(dir.path(), p.pid()), request); }

  json metrics() {
    const Reply r = ask(R"({"cmd":"metrics"})");
    EXPECT_TRUE(r.served()) << r.describe();
    return r.json;
  }

  void update_metrics() {
    const Reply r = ask(R"({"cmd":"update_metrics"})");
    EXPECT_TRUE(r.served()) << r.describe();
  }

  // Sends a command and returns the first line that starts with `reply`.
  std::string command(const std::string& cmd, const std::string& reply) {
    EXPECT_TRUE(p.write(cmd + "\n"));
    auto line = p.read_until([&](const std::string& l) { return l.rfind(reply, 0) == 0; }, kLineMs);
    EXPECT_TRUE(line) << cmd << ": no \"" << reply << "\"\n" << p.describe();
    return line.value_or("");
  }
};

const json* entry(const json& list, const std::string& name) {
  for (const json& e : list)
    if (e.value("name", "") == name) return &e;
  return nullptr;
}

uint64_t sum_of(const json& array) {
  uint64_t n = 0;
  for (const json& v : array) n += v.get<uint64_t>();
  return n;
}

// Runs a program without the library: returns its whole transcript.
rt::RunResult bare(const std::string& program, const std::string& input) {
  Spawn s;
  s.argv = {rt::program(program)};
  s.preload = false;
  return rt::run(s, 30000, input);
}

std::string line_starting(const std::string& text, const std::string& start) {
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (line.rfind(start, 0) == 0) return line;
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return "";
}

// "<prefix>-<name>: <n>" in a headers line (\r\n shown as |); -1 when missing.
long long header_value(const std::string& line, const std::string& prefix, const std::string& name) {
  const std::string key = prefix + "-" + name + ": ";
  const size_t at = line.find(key);
  if (at == std::string::npos) return -1;
  return std::atoll(line.c_str() + at + key.size());
}

// ---------------------------------------------------------------------------------------------
// Without the library

TEST(CApiWithout, ProgramsLinkAgainstNothingExtra) {
  const char* readelf = std::getenv("RSR_TEST_READELF");
  ASSERT_TRUE(readelf && *readelf);
  for (const char* prog : {"capi_c", "capi_cpp"}) {
    const std::string dyn = run_text(std::string(readelf) + " -d " + rt::program(prog));
    ASSERT_NE(dyn.find("NEEDED"), std::string::npos) << dyn;
    EXPECT_EQ(dyn.find("rsrmem"), std::string::npos) << prog << " needs the library:\n" << dyn;
  }
}

TEST(CApiWithout, SameResultsAndEmptyHeaders) {
  struct Case {
    const char* program;
    const char* empty_headers;
  };
  for (const Case& c : {Case{"capi_c", "headers 0 small=ok "}, Case{"capi_cpp", "headers 0 "}}) {
    SCOPED_TRACE(c.program);
    const rt::RunResult without = bare(c.program, "work\nheaders\nquit\n");
    ASSERT_EQ(rt::describe_status(without.status), "exit 0") << without.describe();
    EXPECT_EQ(line_starting(without.out, "present"), "present 0 version 0");
    EXPECT_EQ(line_starting(without.out, "headers"), c.empty_headers);
    EXPECT_EQ(line_starting(without.out, "bye"), "bye");

    TempDir dir;
    Spawn s;
    s.argv = {rt::program(c.program)};
    s.socket_dir = dir.path();
    const rt::RunResult with = rt::run(s, 30000, "work\nquit\n");
    ASSERT_EQ(rt::describe_status(with.status), "exit 0") << with.describe();
    EXPECT_EQ(line_starting(with.out, "present"), "present 1 version 1");
    const std::string result = line_starting(without.out, "result");
    ASSERT_FALSE(result.empty()) << without.out;
    EXPECT_EQ(line_starting(with.out, "result"), result);
  }
}

TEST(CApiWithout, ErrnoIsKept) {
  const rt::RunResult r = bare("capi_c", "errno\nquit\n");
  EXPECT_EQ(line_starting(r.out, "errno"), "errno 4321") << r.describe();
}

TEST(CApiWithout, DeepScopesAreHarmless) {
  const rt::RunResult r = bare("capi_cpp", "deep\nthreads 4 1000\nmany\nquit\n");
  ASSERT_EQ(rt::describe_status(r.status), "exit 0") << r.describe();
  EXPECT_EQ(line_starting(r.out, "deep"), "deep tracked 0");
  EXPECT_EQ(line_starting(r.out, "threads"), "threads done");
}

// ---------------------------------------------------------------------------------------------
// Under the library

TEST(CApi, CProgramFiguresInMetrics) {
  Monitored m("capi_c");
  EXPECT_EQ(m.first, "present 1 version 1");
  m.command("work", "result");
  m.update_metrics();
  const json r = m.metrics();

  const json& caches = r["caches"];
  EXPECT_EQ(caches["enabled"], true);
  EXPECT_EQ(caches["update_frequency_s"], 60);
  const json* users = entry(caches["entries"], "users");
  const json* sessions = entry(caches["entries"], "sessions");
  ASSERT_TRUE(users && sessions) << caches.dump();
  EXPECT_EQ((*users)["hits"], 7);
  EXPECT_EQ((*users)["misses"], 3);
  EXPECT_EQ((*sessions)["hits"], 5);
  EXPECT_EQ((*sessions)["misses"], 2);
  EXPECT_EQ(caches["entries"].size(), 2u) << caches.dump();

  const json& detected = r["leaks"]["detected"];
  EXPECT_EQ(detected["django_model"]["MEDIUM"], 2) << detected.dump();
  EXPECT_EQ(detected["cache_entry"]["HIGH"], 1) << detected.dump();
  EXPECT_EQ(detected["memory_growth"]["HIGH"], 0) << "background counts are kept beside them";

  const json& scopes = r["scopes"];
  ASSERT_EQ(scopes["bounds_mb"].size(), 15u);
  const json* checkout = entry(scopes["entries"], "checkout");
  ASSERT_TRUE(checkout) << scopes.dump();
  EXPECT_EQ((*checkout)["count"], 10);
  EXPECT_NEAR((*checkout)["sum_mb"].get<double>(), 30.0, 30.0 * 0.03);
  ASSERT_EQ((*checkout)["counts"].size(), 16u);
  EXPECT_EQ((*checkout)["counts"][kBucket3MiB], 10) << checkout->dump();
  EXPECT_LT((*checkout)["retained_bytes"].get<uint64_t>(), 64u * 1024) << "each 3 MiB was freed inside its scope";

  const json* report = entry(scopes["entries"], "report");
  ASSERT_TRUE(report) << scopes.dump();
  EXPECT_EQ((*report)["count"], 4);
  EXPECT_GE((*report)["retained_bytes"].get<uint64_t>(), 1024u * 1024) << "each scope kept 256 KiB";

  const json* inner = entry(scopes["entries"], "inner");
  const json* outer = entry(scopes["entries"], "outer");
  ASSERT_TRUE(inner && outer) << scopes.dump();
  EXPECT_EQ((*inner)["count"], 1);
  EXPECT_NEAR((*inner)["sum_mb"].get<double>(), 1.0, 0.05);
  EXPECT_NEAR((*outer)["sum_mb"].get<double>(), 3.0, 0.1) << "an outer scope includes its inner ones";

  const json& depth = r["stack_depth"];
  EXPECT_EQ(depth["bounds"], json::parse("[1,2,4,8,12,16,24,32,48,64,96,128]"));
  ASSERT_EQ(depth["counts"].size(), 13u);
  EXPECT_GT(depth["count"].get<uint64_t>(), 0u);
  EXPECT_EQ(sum_of(depth["counts"]), depth["count"].get<uint64_t>());
  EXPECT_GE(depth["sum"].get<uint64_t>(), depth["count"].get<uint64_t>());

  EXPECT_EQ(r["pid"], m.p.pid());
  EXPECT_EQ(r["update_interval_s"], 300);
  EXPECT_EQ(r["top_sites"], 20);
  EXPECT_GT(r["rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE(r["peak_rss_bytes"].get<uint64_t>(), r["rss_bytes"].get<uint64_t>());
  EXPECT_GE(r["heap"]["allocated_bytes"].get<uint64_t>(), 34u << 20) << "the scopes allocated 34 MiB";
  EXPECT_GE(r["threads"].get<int>(), 1);
  EXPECT_EQ(r["profiling"], json::parse(R"({"enabled":false,"active":0})"));
  EXPECT_TRUE(r["sampling"].contains("tracked_blocks"));
  EXPECT_TRUE(r["tracker"].contains("bytes"));
  EXPECT_TRUE(r["modules"].is_array() && !r["modules"].empty());
  EXPECT_EQ(r["leaks"]["enabled"], true);

  const Reply health = m.ask(R"({"cmd":"health"})");
  ASSERT_TRUE(health.served()) << health.describe();
  EXPECT_EQ(health.json["components"]["prometheus_metrics"]["status"], "ok");

  // Memory headers: default prefix, plausible numbers, the scope's own allocation.
  const std::string h = m.command("headers", "headers");
  EXPECT_NE(h.find(" small=ok "), std::string::npos) << h;
  const long long usage = header_value(h, "X-RSR-Memory", "Usage");
  const long long peak = header_value(h, "X-RSR-Memory", "Peak");
  const long long heap = header_value(h, "X-RSR-Memory", "Heap");
  const long long scope = header_value(h, "X-RSR-Memory", "Scope-Allocated");
  EXPECT_GT(usage, 1 << 20) << h;
  EXPECT_GE(peak, usage) << h;
  EXPECT_GE(heap, 1 << 20) << "the report scopes keep 1 MiB: " << h;
  EXPECT_LT(heap, usage + (64 << 20)) << h;
  EXPECT_GE(scope, 100000) << h;
  EXPECT_LT(scope, 200000) << h;
  long long length = 0;
  ASSERT_EQ(sscanf(h.c_str(), "headers %lld", &length), 1);
  EXPECT_EQ(static_cast<size_t>(length), h.size() - h.find("X-RSR") ) << h;
}

TEST(CApi, ErrnoIsKept) {
  Monitored m("capi_c");
  EXPECT_EQ(m.command("errno", "errno"), "errno 4321");
}

TEST(CApi, CppProgramFiguresInMetrics) {
  Monitored m("capi_cpp");
  EXPECT_EQ(m.first, "present 1 version 1");
  m.command("work", "result");
  m.update_metrics();
  const json r = m.metrics();
  const json* catalog = entry(r["caches"]["entries"], "catalog");
  ASSERT_TRUE(catalog) << r["caches"].dump();
  EXPECT_EQ((*catalog)["hits"], 11);
  EXPECT_EQ((*catalog)["misses"], 4);
  EXPECT_EQ(r["leaks"]["detected"]["session"]["LOW"], 1);
  const json* checkout = entry(r["scopes"]["entries"], "checkout");
  ASSERT_TRUE(checkout) << r["scopes"].dump();
  EXPECT_EQ((*checkout)["count"], 10);
  EXPECT_NEAR((*checkout)["sum_mb"].get<double>(), 30.0, 30.0 * 0.03);
  EXPECT_EQ((*checkout)["counts"][kBucket3MiB], 10);
  EXPECT_GT(r["stack_depth"]["count"].get<uint64_t>(), 0u);
}

TEST(CApi, CustomHeaderPrefix) {
  Monitored m("capi_cpp", {{"RSR_MEMORY_HEADER_PREFIX", "X-Shop-Mem"}});
  const std::string h = m.command("headers", "headers");
  EXPECT_EQ(h.find("X-RSR-Memory"), std::string::npos) << h;
  EXPECT_GT(header_value(h, "X-Shop-Mem", "Usage"), 1 << 20) << h;
  EXPECT_GE(header_value(h, "X-Shop-Mem", "Peak"), header_value(h, "X-Shop-Mem", "Usage")) << h;
  EXPECT_GT(header_value(h, "X-Shop-Mem", "Heap"), 0) << h;
  EXPECT_GE(header_value(h, "X-Shop-Mem", "Scope-Allocated"), 100000) << h;
}

TEST(CApi, ConcurrentThreadsGiveExactTotals) {
  Monitored m("capi_cpp");
  m.command("threads 8 20000", "threads done");
  m.update_metrics();
  const json r = m.metrics();
  const json& entries = r["caches"]["entries"];
  const json* shared = entry(entries, "shared");
  ASSERT_TRUE(shared) << entries.dump();
  EXPECT_EQ((*shared)["hits"], 8 * 20000);
  EXPECT_EQ((*shared)["misses"], 0);
  for (int i = 0; i < 8; ++i) {
    const json* mine = entry(entries, "t" + std::to_string(i));
    ASSERT_TRUE(mine) << i;
    EXPECT_EQ((*mine)["misses"], 20000);
  }
  // Every thread raced to create these names first: each appears once, with every hit.
  for (int i = 0; i < 10; ++i) {
    int seen = 0;
    for (const json& e : entries) seen += e["name"] == "race" + std::to_string(i);
    EXPECT_EQ(seen, 1) << i;
    const json* race = entry(entries, "race" + std::to_string(i));
    ASSERT_TRUE(race) << i;
    EXPECT_EQ((*race)["hits"], 8);
  }
}

TEST(CApi, ScopesNestEightDeep) {
  Monitored m("capi_cpp");
  EXPECT_EQ(m.command("deep", "deep"), "deep tracked 8");
  const json r = m.metrics();
  const json* deep = entry(r["scopes"]["entries"], "deep");
  ASSERT_TRUE(deep) << r["scopes"].dump();
  EXPECT_EQ((*deep)["count"], 8);
}

TEST(CApi, CacheNamesAreBounded) {
  Monitored m("capi_cpp");
  m.command("many", "many done");
  m.update_metrics();
  const json r = m.metrics();
  const json& entries = r["caches"]["entries"];
  uint64_t misses = 0;
  for (const json& e : entries) misses += e["misses"].get<uint64_t>();
  EXPECT_EQ(misses, 70u);
  EXPECT_EQ(entries.size(), 65u) << entries.dump();
  const json* other = entry(entries, "other");
  ASSERT_TRUE(other) << entries.dump();
  EXPECT_EQ((*other)["misses"], 6);
}

// ---------------------------------------------------------------------------------------------
// Settings

TEST(CApiSettings, MetricsDisabledIsRefusedByName) {
  Monitored m("capi_c", {{"RSR_PROMETHEUS_METRICS_ENABLED", "false"}});
  const Reply r = m.ask(R"({"cmd":"metrics"})");
  ASSERT_EQ(r.status, Reply::Status::kOk) << r.describe();
  EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
  EXPECT_EQ(r.json["ok"], false);
  EXPECT_NE(r.json.value("error", "").find("RSR_PROMETHEUS_METRICS_ENABLED"), std::string::npos) << r.payload;
  const Reply health = m.ask(R"({"cmd":"health"})");
  ASSERT_TRUE(health.served()) << health.describe();
  EXPECT_EQ(health.json["components"]["prometheus_metrics"]["status"], "disabled");
}

// The library loaded with monitoring off: the API answers but records and reports nothing.
TEST(CApiSettings, MonitoringOffMakesEveryCallANoOp) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("capi_c")};
  s.socket_dir = dir.path();
  s.env["RSR_MEMORY_MONITORING_ENABLED"] = "false";
  const rt::RunResult r = rt::run(s, 30000, "work\nheaders\nerrno\nquit\n");
  ASSERT_EQ(rt::describe_status(r.status), "exit 0") << r.describe();
  EXPECT_EQ(line_starting(r.out, "present"), "present 1 version 1");
  EXPECT_EQ(line_starting(r.out, "headers"), "headers 0 small=ok ");
  EXPECT_EQ(line_starting(r.out, "errno"), "errno 4321");
}

TEST(CApiSettings, CachesDisabledRecordNothing) {
  Monitored m("capi_c", {{"RSR_CACHE_METRICS_ENABLED", "false"}});
  m.command("work", "result");
  m.update_metrics();
  const json r = m.metrics();
  EXPECT_EQ(r["caches"]["enabled"], false);
  EXPECT_TRUE(r["caches"]["entries"].empty()) << r["caches"].dump();
  EXPECT_NE(entry(r["scopes"]["entries"], "checkout"), nullptr) << "scopes are not cache metrics";
}

TEST(CApiSettings, CacheCountsWaitForTheirPublication) {
  Monitored m("capi_cpp", {{"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "3600"}});
  m.command("work", "result");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  json r = m.metrics();
  EXPECT_EQ(r["caches"]["update_frequency_s"], 3600);
  EXPECT_EQ(entry(r["caches"]["entries"], "catalog"), nullptr) << "published before its time: " << r["caches"].dump();
  const int64_t first = r["caches"]["updated_at"].get<int64_t>();
  m.update_metrics();
  r = m.metrics();
  const json* catalog = entry(r["caches"]["entries"], "catalog");
  ASSERT_TRUE(catalog) << r["caches"].dump();
  EXPECT_EQ((*catalog)["hits"], 11);
  EXPECT_GE(r["caches"]["updated_at"].get<int64_t>(), first);
}

TEST(CApiSettings, CacheCountsArePublishedAtTheirFrequency) {
  Monitored m("capi_cpp", {{"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "1"}});
  m.command("work", "result");
  const json* catalog = nullptr;
  json r;
  for (int i = 0; i < 40 && !catalog; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = m.metrics();
    catalog = entry(r["caches"]["entries"], "catalog");
  }
  ASSERT_TRUE(catalog) << "not published within 4 s: " << r["caches"].dump();
  EXPECT_EQ((*catalog)["hits"], 11);
  EXPECT_EQ((*catalog)["misses"], 4);
}

// The site snapshot: taken every update interval and by update_metrics. Until the first one,
// each request reads the sites as they are (growth since start), so a new service's per-site
// gauges fill from its first scrape; after it, requests show the snapshot until the next.
TEST(CApiSettings, SiteSnapshotWaitsForTheUpdateInterval) {
  Monitored m("capi_c", {{"RSR_MEMORY_METRICS_UPDATE_INTERVAL", "3600"}, {"RSR_SAMPLE_INTERVAL_BYTES", "16384"}});
  m.command("work", "result");
  json r = m.metrics();
  EXPECT_EQ(r["update_interval_s"], 3600);
  ASSERT_FALSE(r["top_live"].empty()) << "no snapshot yet: the sites as they are";
  EXPECT_FALSE(r["top_growth"].empty()) << "growth since start";
  m.update_metrics();
  const json snapshot = m.metrics();
  m.command("work", "result");
  r = m.metrics();
  EXPECT_EQ(r["top_live"], snapshot["top_live"]) << "recomputed per request: " << r["top_live"].dump();
  EXPECT_EQ(r["updated_at"], snapshot["updated_at"]);
  const int64_t first = r["updated_at"].get<int64_t>();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  m.update_metrics();
  r = m.metrics();
  ASSERT_FALSE(r["top_live"].empty()) << r.dump();
  EXPECT_GT(r["updated_at"].get<int64_t>(), first);
  EXPECT_LE(r["top_live"].size(), 20u);
  const json& site = r["top_live"][0];
  for (const char* k : {"id", "live_bytes", "live_blocks", "alloc_bytes", "alloc_blocks", "samples", "live_samples",
                        "growth_bytes", "growth_bytes_per_s", "frames"})
    EXPECT_TRUE(site.contains(k)) << k;
  EXPECT_GT(site["live_bytes"].get<int64_t>(), 0);
  ASSERT_FALSE(r["top_growth"].empty()) << "the kept blocks grew since the previous snapshot";
  EXPECT_GT(r["top_growth"][0]["growth_bytes_per_s"].get<double>(), 0.0);

  // The next snapshot measures growth from this one: nothing grew since.
  m.update_metrics();
  r = m.metrics();
  EXPECT_FALSE(r["top_live"].empty());
  EXPECT_TRUE(r["top_growth"].empty()) << r["top_growth"].dump();
}

TEST(CApiSettings, SiteSnapshotFollowsTheUpdateInterval) {
  Monitored m("capi_c", {{"RSR_MEMORY_METRICS_UPDATE_INTERVAL", "1"}, {"RSR_SAMPLE_INTERVAL_BYTES", "16384"}});
  m.command("work", "result");
  json r;
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = m.metrics();
    if (!r["top_live"].empty()) break;
  }
  EXPECT_FALSE(r["top_live"].empty()) << "no snapshot within 4 s";
  EXPECT_EQ(r["update_interval_s"], 1);
}


// ---------------------------------------------------------------------------------------------
// The README's example

std::string file_text(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// The lines between "// README:begin" and "// README:end" of the example's source.
std::string readme_excerpt(const std::string& source) {
  const std::string begin = "// README:begin\n", end = "// README:end\n";
  const size_t a = source.find(begin), b = source.find(end);
  if (a == std::string::npos || b == std::string::npos || b < a) return "";
  return source.substr(a + begin.size(), b - a - begin.size());
}

TEST(CApiReadme, ExampleIsTheOneInTheReadme) {
  const char* root = std::getenv("RSR_TEST_SOURCE_ROOT");
  ASSERT_TRUE(root);
  const std::string excerpt = readme_excerpt(file_text(std::string(root) + "/tests/capi/programs/readme_example.cc"));
  ASSERT_FALSE(excerpt.empty());
  EXPECT_NE(file_text(std::string(root) + "/README.md").find(excerpt), std::string::npos)
      << "README.md does not carry tests/capi/programs/readme_example.cc's example verbatim:\n" << excerpt;
}

TEST(CApiReadme, ExampleFeedsTheExpositionOfRsrmemctl) {
  const char* ctl = std::getenv("RSR_TEST_CTL");
  ASSERT_TRUE(ctl);
  Monitored m("readme_example", {{"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "1"}});
  for (int i = 1; i <= 5; ++i) m.command("/orders/" + std::to_string(i), "served " + std::to_string(i));
  m.update_metrics();
  const std::string text = run_text("RSR_SOCKET_DIR=" + m.dir.path() + " " + ctl + " --pid " +
                                    std::to_string(m.p.pid()) + " metrics 2>&1");
  auto series = [&](const std::string& name, const std::string& label) {
    size_t at = 0;
    while ((at = text.find(name + "{", at)) != std::string::npos) {
      const size_t eol = text.find('\n', at);
      const std::string line = text.substr(at, eol - at);
      if (line.find(label) != std::string::npos) return std::atof(line.substr(line.rfind(' ') + 1).c_str());
      at = eol;
    }
    return -1.0;
  };
  EXPECT_EQ(series("rsr_cache_hits_total", "cache=\"custom_cache\""), 5) << text;
  EXPECT_EQ(series("rsr_memory_leaks_detected_total", "type=\"session_registry\""), 5) << text;
  EXPECT_NE(text.find("severity=\"medium\""), std::string::npos) << text;
  EXPECT_EQ(series("rsr_request_memory_usage_mb_count", "scope=\"custom_view\""), 5) << text;
  EXPECT_GT(series("rsr_request_memory_usage_mb_sum", "scope=\"custom_view\""), 0) << text;
  EXPECT_GT(series("rsr_memory_usage_bytes", "job=\"readme_example\""), 1 << 20) << text;
}

TEST(CApiReadme, ExampleRunsUnchangedWithoutTheLibrary) {
  const rt::RunResult r = bare("readme_example", "/a\n/b\n");
  EXPECT_NE(r.out.find("served 2 "), std::string::npos) << r.out;
}

}  // namespace
