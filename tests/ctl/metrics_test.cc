// The Prometheus exposition built from fixed `metrics` replies (names, types, help, labels,
// escaping, histograms, site naming and bounds), `promtool check metrics` over it, and the
// Pushgateway client's URL, encoding and HTTP method against a recording HTTP listener.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "commands.h"
#include "errors.h"
#include "fake_server.h"
#include "http_loopback.h"
#include "metrics_exposition.h"
#include "metrics_push.h"
#include "module_map.h"
#include "pyroscope_push.h"
#include "subprocess.h"
#include "symbolizer_fixture.h"

namespace {

using namespace rsr::ctl;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Json site(int id, double live_bytes, double live_blocks, double rate, Json frames) {
  return Json{{"id", id},
              {"live_bytes", live_bytes},
              {"live_blocks", live_blocks},
              {"alloc_bytes", live_bytes * 2},
              {"alloc_blocks", live_blocks * 2},
              {"samples", 4},
              {"live_samples", 3},
              {"growth_bytes", rate * 60},
              {"growth_bytes_per_s", rate},
              {"frames", std::move(frames)}};
}

Json modules_json() {
  volatile int sink = 0;
  Json modules = Json::array();
  for (void* p : {rsrtest::plain_function(&sink), reinterpret_cast<void*>(&modules_json)})
    modules.push_back(rsrtest::module_json(rsrtest::module_of(p)));
  return modules;
}

// A reply shaped as common/protocol.md's `metrics`.
Json metrics_reply(pid_t pid) {
  volatile int sink = 0;
  const std::string plain = hex(reinterpret_cast<uint64_t>(rsrtest::plain_function(&sink)));
  const std::string inlined = hex(reinterpret_cast<uint64_t>(rsrtest::outer_function(&sink)));
  Json r = {{"ok", true},        {"pid", pid},          {"program", "/usr/bin/svc"},
            {"service", "svc"},  {"version", "0.1.0"},  {"protocol", 1},
            {"start_time", 1700000000}, {"uptime_s", 60}, {"mode", "sampled"},
            {"threads", 3},      {"rss_bytes", 50000000}, {"peak_rss_bytes", 60000000}};
  r["heap"] = Json{{"live_bytes", 1000}, {"live_blocks", 10},  {"peak_live_bytes", 2000},
                   {"allocations", 100}, {"frees", 90},        {"allocated_bytes", 5000},
                   {"freed_bytes", 4000}};
  r["sampling"] = Json{{"mode", "sampled"}, {"samples", 42},         {"dropped_samples", 1},
                       {"sites", 7},        {"tracked_blocks", 5},    {"dropped_sites", 7},
                       {"unattributed_live_bytes", 65536}};
  r["tracker"] = Json{{"bytes", 123456}};
  r["update_interval_s"] = 10;
  r["updated_at"] = 1700000050;
  r["top_sites"] = 20;
  // Two sites end in plain_function: one series, summed.
  r["top_live"] = Json::array({site(1, 4096, 4, 0, {plain, "0x10"}),
                               site(2, 1024, 1, 0, {plain}),
                               site(3, 512, 2, 0, {inlined, plain}),
                               site(4, 256, 1, 0, {"0x10"})});
  r["top_growth"] = Json::array({site(1, 4096, 4, 12.5, {plain}), site(5, 100, 1, 2.5, {plain})});
  r["modules"] = modules_json();
  r["leaks"] = Json{{"enabled", true},
                    {"interval_s", 60},
                    {"checks", 3},
                    {"detected",
                     {{"memory_growth", {{"HIGH", 2}, {"CRITICAL", 1}}},
                      {"cache", {{"Medium", 4}}}}}};
  r["stack_depth"] = Json{{"bounds", {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128}},
                          {"counts", {0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5}},
                          {"sum", 900},
                          {"count", 15}};
  r["caches"] = Json{{"enabled", true},
                     {"update_frequency_s", 30},
                     {"updated_at", 1700000040},
                     {"entries", {{{"name", "sessions"}, {"hits", 9}, {"misses", 1}}}}};
  r["scopes"] = Json{
      {"bounds_mb", {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000}},
      {"entries",
       {{{"name", "GET /users"},
         {"counts", {1, 0, 2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
         {"sum_mb", 2000.5},
         {"count", 7},
         {"retained_bytes", 4096}}}}};
  r["profiling"] = Json{{"enabled", false}, {"active", 0}};
  return r;
}

std::string exposition_of(const std::vector<Json>& replies) {
  Exposition e(ExpositionOptions{"testhost", "", ""});
  for (const Json& r : replies) e.add(r);
  return e.text();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Sample lines of `name` (exactly that name, followed by '{' or ' ').
std::vector<std::string> samples(const std::string& text, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(text))
    if (l.rfind(name, 0) == 0 && l.size() > name.size() &&
        (l[name.size()] == '{' || l[name.size()] == ' '))
      out.push_back(l);
  return out;
}

double value(const std::string& sample_line) {
  return std::stod(sample_line.substr(sample_line.rfind(' ') + 1));
}

TEST(Exposition, EveryMetricHasItsTypeAndHelp) {
  const std::string text = exposition_of({metrics_reply(1234)});
  const std::map<std::string, std::string> types = {
      {"rsr_memory_usage_bytes", "gauge"},
      {"rsr_memory_peak_usage_bytes", "gauge"},
      {"rsr_request_memory_usage_mb", "histogram"},
      {"rsr_scope_retained_bytes_total", "counter"},
      {"rsr_cache_hits_total", "counter"},
      {"rsr_cache_misses_total", "counter"},
      {"rsr_memory_leaks_detected_total", "counter"},
      {"rsr_leak_checks_total", "counter"},
      {"rsr_model_instance_count", "gauge"},
      {"rsr_site_live_bytes", "gauge"},
      {"rsr_object_growth_rate", "gauge"},
      {"rsr_deletion_tracker_size", "gauge"},
      {"rsr_project_hierarchy_depth", "histogram"},
      {"rsr_heap_live_bytes", "gauge"},
      {"rsr_heap_live_blocks", "gauge"},
      {"rsr_heap_peak_live_bytes", "gauge"},
      {"rsr_allocations_total", "counter"},
      {"rsr_frees_total", "counter"},
      {"rsr_allocated_bytes_total", "counter"},
      {"rsr_freed_bytes_total", "counter"},
      {"rsr_tracker_bytes", "gauge"},
      {"rsr_samples_total", "counter"},
      {"rsr_dropped_samples_total", "counter"},
      {"rsr_unattributed_live_bytes", "gauge"},
      {"rsr_sites", "gauge"},
      {"rsr_profiling_active", "gauge"},
      {"rsr_process_start_time_seconds", "gauge"},
      {"rsr_metrics_updated_timestamp_seconds", "gauge"},
      {"rsr_info", "gauge"},
  };
  for (const auto& [name, type] : types) {
    EXPECT_THAT(text, HasSubstr("\n# TYPE " + name + " " + type + "\n")) << name;
    EXPECT_THAT(text, HasSubstr("# HELP " + name + " ")) << name;
  }
  // Only these; run's process-state series are not part of a plain exposition.
  int type_lines = 0;
  for (const std::string& l : lines_of(text)) type_lines += l.rfind("# TYPE ", 0) == 0;
  EXPECT_EQ(type_lines, static_cast<int>(types.size()));
}

TEST(Exposition, ValuesComeFromTheReply) {
  const std::string text = exposition_of({metrics_reply(1234)});
  const std::string base = "instance=\"testhost\",job=\"svc\"";
  EXPECT_THAT(text, HasSubstr("rsr_memory_usage_bytes{" + base + "} 50000000\n"));
  EXPECT_THAT(text, HasSubstr("rsr_memory_peak_usage_bytes{" + base + "} 60000000\n"));
  EXPECT_THAT(text, HasSubstr("rsr_heap_live_bytes{" + base + "} 1000\n"));
  EXPECT_THAT(text, HasSubstr("rsr_allocations_total{" + base + "} 100\n"));
  EXPECT_THAT(text, HasSubstr("rsr_freed_bytes_total{" + base + "} 4000\n"));
  EXPECT_THAT(text, HasSubstr("rsr_deletion_tracker_size{" + base + "} 5\n"));
  EXPECT_THAT(text, HasSubstr("rsr_tracker_bytes{" + base + "} 123456\n"));
  EXPECT_THAT(text, HasSubstr("rsr_dropped_samples_total{" + base + ",table=\"blocks\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rsr_dropped_samples_total{" + base + ",table=\"sites\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("rsr_unattributed_live_bytes{" + base + "} 65536\n"));
  EXPECT_THAT(text, HasSubstr("rsr_leak_checks_total{" + base + "} 3\n"));
  EXPECT_THAT(text, HasSubstr("rsr_process_start_time_seconds{" + base + "} 1700000000\n"));
  EXPECT_THAT(text, HasSubstr("rsr_metrics_updated_timestamp_seconds{" + base + "} 1700000050\n"));
  EXPECT_THAT(text, HasSubstr("rsr_scope_retained_bytes_total{" + base +
                              ",scope=\"GET /users\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("rsr_cache_hits_total{cache=\"sessions\"," + base + "} 9\n"));
  EXPECT_THAT(text, HasSubstr("rsr_cache_misses_total{cache=\"sessions\"," + base + "} 1\n"));
  const std::vector<std::string> info = samples(text, "rsr_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_THAT(info[0], AllOf(HasSubstr("version=\"0.1.0\""), HasSubstr("program=\"/usr/bin/svc\""),
                             HasSubstr("mode=\"sampled\""), HasSubstr("pid=\"1234\"")));
  EXPECT_EQ(value(info[0]), 1);
}

TEST(Exposition, EverySeriesCarriesJobAndInstance) {
  const std::string text = exposition_of({metrics_reply(1234)});
  int series = 0;
  for (const std::string& l : lines_of(text)) {
    if (l.empty() || l[0] == '#') continue;
    ++series;
    EXPECT_THAT(l, HasSubstr("job=\"svc\"")) << l;
    EXPECT_THAT(l, HasSubstr("instance=\"testhost\"")) << l;
  }
  EXPECT_GT(series, 40);
}

TEST(Exposition, JobFallsBackToTheProgramAndCanBeOverridden) {
  Json r = metrics_reply(7);
  r.erase("service");
  r["program"] = "/opt/bin/worker";
  EXPECT_EQ(job_of(r), "worker");
  EXPECT_THAT(exposition_of({r}), HasSubstr("job=\"worker\""));
  Exposition e(ExpositionOptions{"h", "batch", ""});
  e.add(r);
  EXPECT_THAT(e.text(), AllOf(HasSubstr("job=\"batch\""), Not(HasSubstr("job=\"worker\""))));
  EXPECT_EQ(e.instance_of(r), "h");
}

TEST(Exposition, HistogramsAreCumulativeWithSumAndCount) {
  const std::string text = exposition_of({metrics_reply(1)});
  const std::vector<std::string> buckets = samples(text, "rsr_project_hierarchy_depth_bucket");
  ASSERT_EQ(buckets.size(), 13u);  // 12 bounds and +Inf
  const double expected[] = {0, 1, 3, 6, 10, 10, 10, 10, 10, 10, 10, 10, 15};
  for (size_t i = 0; i < buckets.size(); ++i) EXPECT_EQ(value(buckets[i]), expected[i]) << buckets[i];
  EXPECT_THAT(buckets[0], HasSubstr("le=\"1\""));
  EXPECT_THAT(buckets[4], HasSubstr("le=\"12\""));
  EXPECT_THAT(buckets[12], HasSubstr("le=\"+Inf\""));
  ASSERT_EQ(samples(text, "rsr_project_hierarchy_depth_sum").size(), 1u);
  EXPECT_EQ(value(samples(text, "rsr_project_hierarchy_depth_sum")[0]), 900);
  EXPECT_EQ(value(samples(text, "rsr_project_hierarchy_depth_count")[0]), 15);

  const std::vector<std::string> mb = samples(text, "rsr_request_memory_usage_mb_bucket");
  ASSERT_EQ(mb.size(), 16u);
  EXPECT_THAT(mb[0], AllOf(HasSubstr("scope=\"GET /users\""), HasSubstr("le=\"0.01\"")));
  EXPECT_EQ(value(mb[0]), 1);
  EXPECT_EQ(value(mb[2]), 3);
  EXPECT_EQ(value(mb[5]), 6);
  EXPECT_EQ(value(mb[14]), 6);  // le="1000"
  EXPECT_EQ(value(mb[15]), 7);  // +Inf
  EXPECT_EQ(value(samples(text, "rsr_request_memory_usage_mb_sum")[0]), 2000.5);
  EXPECT_EQ(value(samples(text, "rsr_request_memory_usage_mb_count")[0]), 7);
}

TEST(Exposition, MalformedHistogramsAreLeftOut) {
  Json r = metrics_reply(1);
  r["stack_depth"]["counts"] = Json::array({1, 2});  // not len(bounds) + 1
  r["scopes"]["bounds_mb"] = Json::array({1, 0.5});  // not increasing
  const std::string text = exposition_of({r});
  EXPECT_THAT(text, Not(HasSubstr("rsr_project_hierarchy_depth")));
  EXPECT_THAT(text, Not(HasSubstr("rsr_request_memory_usage_mb")));
  EXPECT_THAT(text, HasSubstr("rsr_scope_retained_bytes_total{"));  // the scope's other series
}

TEST(Exposition, SitesAreNamedByTheirFirstUserFrameAndSummed) {
  const std::string text = exposition_of({metrics_reply(1)});
  const std::string plain = "rsrtest::plain_function (symbolizer_fixture.cc:" +
                            std::to_string(rsrtest::plain_call_line) + ")";
  const std::string inlined = "rsrtest::inlined_helper (symbolizer_fixture.cc:" +
                              std::to_string(rsrtest::inlined_call_line) + ")";
  const std::vector<std::string> blocks = samples(text, "rsr_model_instance_count");
  ASSERT_EQ(blocks.size(), 3u) << text;  // plain (sites 1 and 2), inlined, 0x10
  std::map<std::string, double> by_site;
  for (const std::string& l : blocks) {
    const size_t at = l.find("site=\"") + 6;
    by_site[l.substr(at, l.find('"', at) - at)] = value(l);
  }
  EXPECT_EQ(by_site[plain], 5);
  EXPECT_EQ(by_site[inlined], 2);
  EXPECT_EQ(by_site["0x10"], 1);
  EXPECT_THAT(text, HasSubstr("rsr_site_live_bytes{instance=\"testhost\",job=\"svc\",site=\"" +
                              plain + "\"} 5120\n"));
  EXPECT_THAT(text, HasSubstr("rsr_object_growth_rate{instance=\"testhost\",job=\"svc\",site=\"" +
                              plain + "\"} 15\n"));
}

TEST(Exposition, SitesAreBoundedByTopSites) {
  Json r = metrics_reply(1);
  Json many = Json::array();
  for (int i = 0; i < 30; ++i) many.push_back(site(i, 100, 1, 1, {hex(0x10 + i)}));
  r["top_live"] = many;
  r["top_growth"] = many;
  r["top_sites"] = 4;
  const std::string text = exposition_of({r});
  EXPECT_EQ(samples(text, "rsr_model_instance_count").size(), 4u);
  EXPECT_EQ(samples(text, "rsr_site_live_bytes").size(), 4u);
  EXPECT_EQ(samples(text, "rsr_object_growth_rate").size(), 4u);
}

TEST(Exposition, SeverityIsLowercaseAndLeakCountsAreSummed) {
  const std::string text = exposition_of({metrics_reply(1)});
  const std::string base = "rsr_memory_leaks_detected_total{instance=\"testhost\",job=\"svc\",";
  EXPECT_THAT(text, HasSubstr(base + "severity=\"high\",type=\"memory_growth\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(base + "severity=\"critical\",type=\"memory_growth\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(base + "severity=\"medium\",type=\"cache\"} 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("severity=\"HIGH\"")));

  Json r = metrics_reply(1);
  r["leaks"]["detected"] = Json{{"manual", {{"HIGH", 2}, {"high", 3}}}};
  EXPECT_THAT(exposition_of({r}), HasSubstr(base + "severity=\"high\",type=\"manual\"} 5\n"));
}

TEST(Exposition, CachesAreOmittedWhenDisabled) {
  Json r = metrics_reply(1);
  r["caches"]["enabled"] = false;
  const std::string text = exposition_of({r});
  EXPECT_THAT(text, Not(HasSubstr("rsr_cache_hits_total")));
  EXPECT_THAT(text, Not(HasSubstr("rsr_cache_misses_total")));
}

TEST(Exposition, LabelValuesAreEscaped) {
  Json r = metrics_reply(1);
  r["service"] = "svc \"blue\"";
  r["scopes"]["entries"][0]["name"] = "a\"b\\c\nd";
  r["caches"]["entries"][0]["name"] = "back\\slash";
  const std::string text = exposition_of({r});
  EXPECT_THAT(text, HasSubstr("scope=\"a\\\"b\\\\c\\nd\""));
  EXPECT_THAT(text, HasSubstr("cache=\"back\\\\slash\""));
  EXPECT_THAT(text, HasSubstr("job=\"svc \\\"blue\\\"\""));
  for (const std::string& l : lines_of(text)) EXPECT_THAT(l, Not(HasSubstr("a\"b")));
}

// The same labels across restarts: a job's processes on a host are numbered in the order asked
// (pid order in a scrape), not named by pid.
TEST(Exposition, InstanceNamesStayTheSameAcrossRestarts) {
  InstanceNames first("h");
  EXPECT_EQ(first.of("api", 100), "h");
  EXPECT_EQ(first.of("api", 200), "h/2");
  EXPECT_EQ(first.of("batch", 300), "h");
  EXPECT_EQ(first.of("api", 100), "h");  // asked again: the same
  InstanceNames restarted("h");           // both api processes restarted with new pids
  EXPECT_EQ(restarted.of("api", 5000), "h");
  EXPECT_EQ(restarted.of("api", 6000), "h/2");
}

// Pyroscope's series follow the same numbering: the job's K-th process on the host.
TEST(Exposition, PyroscopeNamesNumberTheJobsProcessesAsInstancesDo) {
  InstanceNames names("h");
  EXPECT_EQ(names.ordinal("api", 100), 1);
  EXPECT_EQ(names.ordinal("api", 200), 2);
  EXPECT_EQ(names.ordinal("batch", 300), 1);
  EXPECT_EQ(names.ordinal("api", 100), 1);
  EXPECT_EQ(names.of("api", 200), "h/2");
  EXPECT_EQ(pyroscope_name("api", "h", 2), "api{hostname=h,process=2}");
  EXPECT_EQ(pyroscope_name("my svc", "h{1}", 1), "my_svc{hostname=h_1_,process=1}");
}

TEST(Exposition, SeveralProcessesShareEachFamily) {
  const std::string text = exposition_of({metrics_reply(11), metrics_reply(22)});
  int help = 0;
  for (const std::string& l : lines_of(text)) help += l == "# TYPE rsr_memory_usage_bytes gauge";
  EXPECT_EQ(help, 1);
  const std::vector<std::string> rss = samples(text, "rsr_memory_usage_bytes");
  ASSERT_EQ(rss.size(), 2u);
  // Two processes of one job on one host: the host's name, then "/2" (the pids are on rsr_info).
  EXPECT_THAT(text, HasSubstr("instance=\"testhost\""));
  EXPECT_THAT(text, HasSubstr("instance=\"testhost/2\""));
  EXPECT_THAT(text, Not(HasSubstr("instance=\"testhost:")));
  EXPECT_THAT(text, HasSubstr("pid=\"22\""));
}

TEST(Exposition, AnOldOrSparseReplyStillRenders) {
  const Json r = {{"ok", true}, {"pid", 5}, {"service", "old"}, {"rss_bytes", 10}};
  const std::string text = exposition_of({r});
  EXPECT_THAT(text, HasSubstr("rsr_memory_usage_bytes{instance=\"testhost\",job=\"old\"} 10\n"));
  EXPECT_THAT(text, Not(HasSubstr("rsr_project_hierarchy_depth")));
  EXPECT_THAT(text, Not(HasSubstr("site=")));
}

TEST(Exposition, ProcessStateForRun) {
  const Json r = metrics_reply(9);
  Exposition running(ExpositionOptions{"h", "", ""});
  running.add(r);
  running.add_process_state(r, false, 0);
  EXPECT_THAT(running.text(), AllOf(HasSubstr("rsr_process_exited{instance=\"h\",job=\"svc\"} 0\n"),
                                    Not(HasSubstr("rsr_process_exit_code"))));
  Exposition done(ExpositionOptions{"h", "", ""});
  done.add_process_state(r, true, 3);
  EXPECT_THAT(done.text(), AllOf(HasSubstr("rsr_process_exited{instance=\"h\",job=\"svc\"} 1\n"),
                                 HasSubstr("rsr_process_exit_code{instance=\"h\",job=\"svc\"} 3\n")));
}

TEST(Exposition, NoTimestamps) {
  for (const std::string& l : lines_of(exposition_of({metrics_reply(1)}))) {
    if (l.empty() || l[0] == '#') continue;
    const std::string after_labels = l.substr(l.rfind('}') + 1);
    EXPECT_EQ(std::count(after_labels.begin(), after_labels.end(), ' '), 1) << l;
  }
}

// promtool's linter objects to two names the seed chose and the SPEC keeps so the seed's alert
// rules work unchanged; anything else it reports is a fault.
TEST(Exposition, PromtoolFindsNothingButTheSeedNames) {
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool is not installed";
  rsrtest::TempDir dir;
  Json odd = metrics_reply(22);
  odd["scopes"]["entries"][0]["name"] = "a\"b\\c\nd";
  const std::string path = dir.path() + "/exposition.txt";
  std::ofstream(path) << exposition_of({metrics_reply(11), odd});
  const rsrtest::Result r =
      rsrtest::run({"/bin/sh", "-c", "/usr/bin/promtool check metrics < '" + path + "'"});
  const std::set<std::string> seed_names = {
      "rsr_model_instance_count non-histogram and non-summary metrics should not have \"_count\" "
      "suffix",
      "rsr_request_memory_usage_mb metric names should not contain abbreviated units"};
  for (const std::string& line : lines_of(r.out + r.err))
    if (!line.empty()) {
      EXPECT_TRUE(seed_names.count(line)) << line;
    }
  // Parse errors are reported differently (exit 1); lint findings alone exit 3.
  EXPECT_THAT(r.code, ::testing::AnyOf(0, 3)) << r.out << r.err;
}

// ---- metrics against a fake control server ----

class MetricsCommandTest : public ::testing::Test {
 protected:
  GlobalOptions options(TargetMode mode, OutputFormat format = OutputFormat::kText) const {
    GlobalOptions g;
    g.target.mode = mode;
    g.target.dir = dir_.path();
    g.target.pid = getpid();
    g.format = format;
    g.timeout = std::chrono::milliseconds(2000);
    return g;
  }
  std::string socket_for(pid_t pid) const {
    return dir_.path() + "/" + std::to_string(pid) + ".sock";
  }
  static rsrtest::FakeServer::Handler answer(Json reply) {
    return [reply](const std::string& request) {
      if (Json::parse(request).value("cmd", "") != "metrics")
        return rsrtest::frame(rsr::proto::Kind::kError, R"({"ok":false,"error":"unknown"})");
      return rsrtest::reply(reply.dump());
    };
  }

  rsrtest::TempDir dir_;
  std::ostringstream out_, err_;
  Io io_{out_, err_};
};

TEST_F(MetricsCommandTest, PrintsTheExposition) {
  rsrtest::FakeServer server(socket_for(getpid()), answer(metrics_reply(getpid())));
  EXPECT_EQ(cmd_metrics(options(TargetMode::kPid), io_), kExitOk) << err_.str();
  const std::string instance = "instance=\"" + local_hostname();
  EXPECT_THAT(out_.str(), HasSubstr("rsr_memory_usage_bytes{" + instance + "\",job=\"svc\"}"));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(MetricsCommandTest, AllPutsEveryProcessInOneExposition) {
  // Two live pids: this process and its parent.
  rsrtest::FakeServer a(socket_for(getpid()), answer(metrics_reply(getpid())));
  rsrtest::FakeServer b(socket_for(getppid()), answer(metrics_reply(getppid())));
  EXPECT_EQ(cmd_metrics(options(TargetMode::kAll), io_), kExitOk) << err_.str();
  EXPECT_EQ(samples(out_.str(), "rsr_memory_usage_bytes").size(), 2u);
  EXPECT_THAT(out_.str(), Not(HasSubstr("==")));
}

TEST_F(MetricsCommandTest, ARefusalIsExitFour) {
  rsrtest::FakeServer server(socket_for(getpid()), [](const std::string&) {
    return rsrtest::frame(
        rsr::proto::Kind::kError,
        R"x({"ok":false,"error":"metrics are disabled (RSR_PROMETHEUS_METRICS_ENABLED=false)"})x");
  });
  EXPECT_EQ(cmd_metrics(options(TargetMode::kPid), io_), kExitConnection);
  EXPECT_THAT(err_.str(), HasSubstr("RSR_PROMETHEUS_METRICS_ENABLED"));
  EXPECT_EQ(out_.str(), "");
}

// ---- serve's --listen ----

TEST(ServeListen, AcceptsAddressesAndPorts) {
  EXPECT_EQ(civetweb_listen_address("127.0.0.1:9464"), "127.0.0.1:9464");
  EXPECT_EQ(civetweb_listen_address("localhost:0"), "127.0.0.1:0");
  EXPECT_EQ(civetweb_listen_address("0.0.0.0:80"), "0.0.0.0:80");
  EXPECT_EQ(civetweb_listen_address("[::1]:9464"), "[::1]:9464");
}

TEST(ServeListen, RefusesWhatCannotBeListenedOn) {
  for (const char* bad : {"9464", "127.0.0.1", "127.0.0.1:", ":9464", "127.0.0.1:65536",
                          "127.0.0.1:http", "example.com:9464", "[::1:9464", "300.1.1.1:1"}) {
    try {
      civetweb_listen_address(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_THAT(e.what(), HasSubstr(std::string("'") + bad + "'"));
    }
  }
}

// ---- the Pushgateway client ----

TEST(Pushgateway, ParsesUrls) {
  GatewayAddress a = parse_gateway_url("http://127.0.0.1:9091");
  EXPECT_EQ(a.host, "http://127.0.0.1");
  EXPECT_EQ(a.port, "9091");
  a = parse_gateway_url("https://push.example.com/prefix/");
  EXPECT_EQ(a.host, "https://push.example.com");
  EXPECT_EQ(a.port, "443/prefix");
  a = parse_gateway_url("HTTP://[::1]:9091");
  EXPECT_EQ(a.host, "http://[::1]");
  EXPECT_EQ(a.port, "9091");
  for (const char* bad : {"127.0.0.1:9091", "ftp://h:1", "http://:9091", "http://h:0",
                          "http://h:99999", "http://h:x", "http://h:1/?a=b", "http://u:p@h:1",
                          "http://h h:1"}) {
    try {
      parse_gateway_url(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_THAT(e.what(), HasSubstr(bad));
    }
  }
}

TEST(Pushgateway, EncodesTheGroupingKey) {
  EXPECT_EQ(percent_encode("host-1.example:123"), "host-1.example:123");
  EXPECT_EQ(percent_encode("my svc/\"x\"%"), "my%20svc%2F%22x%22%25");
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg==");
  EXPECT_EQ(base64url("fo"), "Zm8=");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("/var/tmp"), "L3Zhci90bXA=");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8=");
  EXPECT_EQ(grouping_segment("instance", "h:1"), std::make_pair(std::string("instance"), std::string("h:1")));
  EXPECT_EQ(grouping_segment("instance", "a/b"),
            std::make_pair(std::string("instance@base64"), std::string("YS9i")));
  EXPECT_EQ(grouping_segment("instance", ""),
            std::make_pair(std::string("instance@base64"), std::string("=")));
  EXPECT_EQ(encoded_job("my job"), "my%20job");
  EXPECT_THROW(encoded_job("a/b"), CtlError);
  EXPECT_THROW(encoded_job(""), CtlError);
}

TEST(Pushgateway, ReplacesTheGroupWithPut) {
  rsrtest::RecordingHttp http;
  Exposition e(ExpositionOptions{"host", "my job", "host/2"});
  e.add(metrics_reply(42));
  push_group(parse_gateway_url(http.url() + "/prefix"), "my job", "host/2", e.families());
  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].path, "/prefix/metrics/job/my%20job/instance@base64/aG9zdC8y");  // "/" needs base64
  EXPECT_THAT(requests[0].body, HasSubstr("rsr_memory_usage_bytes{instance=\"host/2\",job=\"my job\"} 50000000\n"));
}

TEST(Pushgateway, ARefusalOrNoGatewayIsExitFour) {
  {
    rsrtest::RecordingHttp http(400);
    try {
      push_group(parse_gateway_url(http.url()), "j", "h:1", {});
      ADD_FAILURE() << "no error";
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), kExitConnection);
      EXPECT_THAT(e.what(), HasSubstr("HTTP status 400"));
    }
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(rsrtest::free_loopback_port());
  try {
    push_group(parse_gateway_url(url), "j", "h:1", {});
    ADD_FAILURE() << "no error";
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitConnection);
    EXPECT_THAT(e.what(), AllOf(HasSubstr("could not push"), HasSubstr(url)));
  }
}

// A refused push says what the gateway said, on stderr only: stdout stays the command's (text,
// or JSON with --format json).
TEST_F(MetricsCommandTest, ARefusedPushSaysWhatTheGatewaySaid) {
  const std::string why = "pushed metrics are invalid or inconsistent with existing metrics: collected metric x";
  rsrtest::RecordingHttp http(400, why + "\n");
  rsrtest::FakeServer server(socket_for(getpid()), answer(metrics_reply(getpid())));
  PushOptions push{http.url(), "", 0, ""};
  testing::internal::CaptureStdout();
  EXPECT_EQ(cmd_push(options(TargetMode::kPid), push, io_), kExitConnection);
  const std::string leaked = testing::internal::GetCapturedStdout();
  EXPECT_EQ(leaked, "");  // nothing of the gateway's answer on the process's own stdout
  EXPECT_THAT(err_.str(), HasSubstr("refused the push"));
  EXPECT_THAT(err_.str(), HasSubstr("HTTP status 400: " + why));
  EXPECT_EQ(out_.str(), "");

  err_.str("");
  GlobalOptions g = options(TargetMode::kPid);
  g.format = OutputFormat::kJson;
  EXPECT_EQ(cmd_push(g, push, io_), kExitConnection);
  const Json j = Json::parse(out_.str());
  EXPECT_EQ(j["gateway"], http.url());
  EXPECT_TRUE(j["pushed"].empty());
  ASSERT_EQ(j["failed"].size(), 1u);
  EXPECT_EQ(j["failed"][0]["pid"], getpid());
  EXPECT_EQ(j["failed"][0]["job"], "svc");
  EXPECT_THAT(j["failed"][0]["error"].get<std::string>(), HasSubstr(why));
}

TEST_F(MetricsCommandTest, PushSendsEachProcessAsItsGroup) {
  rsrtest::RecordingHttp http;
  rsrtest::FakeServer server(socket_for(getpid()), answer(metrics_reply(getpid())));
  PushOptions push{http.url(), "", 0, ""};
  EXPECT_EQ(cmd_push(options(TargetMode::kPid), push, io_), kExitOk) << err_.str();
  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_EQ(requests[0].path, "/metrics/job/svc/instance/" + percent_encode(local_hostname()));
  EXPECT_THAT(out_.str(), HasSubstr("Pushed " + std::to_string(getpid()) + " (svc)"));
}

TEST_F(MetricsCommandTest, RunPusherPushesWhileRunningThenTheExit) {
  rsrtest::RecordingHttp http;
  rsrtest::FakeServer server(socket_for(getpid()), answer(metrics_reply(getpid())));
  RunPusher pusher(RunPusher::Settings{parse_gateway_url(http.url()),
                                       std::chrono::milliseconds(50), socket_for(getpid()),
                                       getpid(), "fallback", std::chrono::milliseconds(2000)});
  for (int i = 0; i < 200 && http.requests().size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(std::move(pusher).finish(7));
  const auto requests = http.requests();
  ASSERT_GE(requests.size(), 3u);
  const std::string labels = "{instance=\"" + local_hostname() + "\",job=\"svc\"}";
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_THAT(requests[0].body, AllOf(HasSubstr("rsr_memory_usage_bytes" + labels),
                                      HasSubstr("rsr_process_exited" + labels + " 0\n"),
                                      Not(HasSubstr("rsr_process_exit_code"))));
  EXPECT_THAT(requests.back().body, AllOf(HasSubstr("rsr_memory_usage_bytes" + labels),
                                          HasSubstr("rsr_process_exited" + labels + " 1\n"),
                                          HasSubstr("rsr_process_exit_code" + labels + " 7\n")));
}

TEST_F(MetricsCommandTest, RunPusherWithoutAnAnswerPushesTheExitAlone) {
  rsrtest::RecordingHttp http;
  RunPusher pusher(RunPusher::Settings{parse_gateway_url(http.url()),
                                       std::chrono::milliseconds(50), socket_for(4242424),
                                       4242424, "batch", std::chrono::milliseconds(500)});
  EXPECT_TRUE(std::move(pusher).finish(0));
  const auto requests = http.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].path, "/metrics/job/batch/instance/" + percent_encode(local_hostname()));
  EXPECT_THAT(requests[0].body, AllOf(HasSubstr("rsr_process_exited{instance=\"" +
                                                local_hostname() + "\",job=\"batch\"} 1"),
                                      HasSubstr("rsr_process_exit_code{"),
                                      Not(HasSubstr("rsr_memory_usage_bytes"))));
}

}  // namespace
