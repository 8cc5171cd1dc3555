// check-leaks end to end: the real rsrmemctl against a real leaking program under the real
// librsrmem.so, with leak checks every second. Paths come from the environment
// (tests/ctl/meson.build): RSRMEMCTL, RSR_PRELOAD_LIB, RSR_LEAK_TARGET, NOTIFY_LEAKS.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "subprocess.h"

namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using rsrtest::Result;
using Clock = std::chrono::steady_clock;

// Fast leak detection: checks every second, probes every 100 ms, small sites judged.
const rsrtest::EnvOverrides kFastChecks = {{"RSR_LEAK_CHECK_INTERVAL", "1"},
                                           {"RSR_SAMPLE_INTERVAL_BYTES", "16384"},
                                           {"RSR_LEAK_MIN_SITE_BYTES", "65536"}};

bool names(const Json& report, const std::string& function) {
  for (const Json& r : report.value("recommendations", Json::array()))
    if (r.get<std::string>().find(function) != std::string::npos) return true;
  return false;
}

class LeaksE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rsrctl-leaks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (rsrtest::Child& c : services_) {
      kill(c.pid, SIGTERM);
      rsrtest::finish(c);
    }
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  Result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return rsrtest::run(args, {{"RSR_SOCKET_DIR", dir_}});
  }

  // Starts the target under the preload (rsrmemctl run) and waits for its socket.
  pid_t start(const std::string& mode, rsrtest::EnvOverrides env) {
    env["RSR_SOCKET_DIR"] = dir_;
    env["RSR_SERVICE_NAME"] = "leaky";
    std::vector<pid_t> before = live_pids();
    services_.push_back(rsrtest::spawn({ctl_, "run", "--", target_, mode}, env));
    for (int i = 0; i < 200; ++i) {
      for (pid_t p : live_pids())
        if (std::find(before.begin(), before.end(), p) == before.end()) return p;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return 0;
  }

  // `check-leaks --format json` every half second until a recommendation names `function` (12 s
  // at most); the last result.
  Result poll_until_named(const std::string& pid, const std::string& function) {
    Result r;
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(12);
    while (Clock::now() < deadline) {
      r = ctl({"--pid", pid, "check-leaks", "--format", "json"});
      if (r.code == 1 && names(Json::parse(r.out, nullptr, false), function)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return r;
  }

  std::vector<pid_t> live_pids() {
    std::vector<pid_t> pids;
    const Json rows = Json::parse(ctl({"list", "--format", "json"}).out, nullptr, false);
    if (rows.is_array())
      for (const Json& row : rows)
        if (row.value("state", "") == "live") pids.push_back(row["pid"].get<pid_t>());
    return pids;
  }

  std::string ctl_ = rsrtest::env_or_die("RSRMEMCTL");
  std::string target_ = rsrtest::env_or_die("RSR_LEAK_TARGET");
  std::string notify_ = rsrtest::env_or_die("NOTIFY_LEAKS");
  std::string dir_;
  std::vector<rsrtest::Child> services_;
};


TEST_F(LeaksE2eTest, NamesTheLeakingFunctionWithinSeconds) {
  const pid_t leaky = start("leak", kFastChecks);
  ASSERT_GT(leaky, 0) << "the leaking program did not appear in " << dir_;
  const pid_t steady = start("steady", kFastChecks);
  ASSERT_GT(steady, 0);
  const std::string pid = std::to_string(leaky);

  // A planted leak is reported with its function within a few check intervals.
  Result r = poll_until_named(pid, "register_session");
  const Json report = Json::parse(r.out, nullptr, false);
  ASSERT_EQ(r.code, 1) << r.out << r.err;
  ASSERT_TRUE(names(report, "register_session")) << report.dump(2);
  EXPECT_GT(report["leak_indicators"].size(), 0u);
  EXPECT_EQ(report["pid"], leaky);
  EXPECT_EQ(report["service"], "leaky");
  bool site_named = false;
  for (const Json& i : report["leak_indicators"]) {
    EXPECT_THAT(i["severity"].get<std::string>(),
                ::testing::AnyOf("LOW", "MEDIUM", "HIGH", "CRITICAL"));
    if (!i.contains("site")) continue;
    const Json& u = i["site"]["user_frame"];
    if (u["function"] != "register_session") continue;
    site_named = true;
    EXPECT_THAT(u["file"].get<std::string>(), HasSubstr("leak_target.cc"));
    EXPECT_GT(u["line"].get<int>(), 0);
    EXPECT_THAT(u["module"].get<std::string>(), HasSubstr("ctl-leak-target"));
    EXPECT_THAT(i["message"].get<std::string>(), HasSubstr("register_session (leak_target.cc:"));
  }
  EXPECT_TRUE(site_named) << report.dump(2);

  r = ctl({"--pid", pid, "check-leaks"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.out, HasSubstr(" leak indicator"));
  EXPECT_THAT(r.out, HasSubstr("\nRecommendations:\n  \u2022 "));
  EXPECT_THAT(r.out, HasSubstr("Review register_session (leak_target.cc:"));

  r = ctl({"--pid", pid, "check-leaks", "--verbose"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.out, HasSubstr("levels over the process's life (oldest first):"));
  EXPECT_THAT(r.out, HasSubstr("History (live heap level and RSS over the process's life"));

  // The seed's automation line works as written.
  if (std::system("command -v jq >/dev/null 2>&1") == 0) {
    r = rsrtest::run({"/bin/sh", "-c",
                      "RSR_SOCKET_DIR='" + dir_ + "' '" + ctl_ + "' --pid " + pid +
                          " check-leaks --format=json | jq '.leak_indicators | length'"});
    EXPECT_GT(std::atoi(r.out.c_str()), 0) << r.out << r.err;
  }

  // --all: one JSON object keyed by pid; exit 1 because one process leaks.
  r = ctl({"--all", "check-leaks", "--format", "json"});
  EXPECT_EQ(r.code, 1) << r.err;
  const Json all = Json::parse(r.out);
  EXPECT_GT(all[pid]["leak_indicators"].size(), 0u);
  EXPECT_TRUE(all[std::to_string(steady)]["leak_indicators"].is_array());

  // The notifier against the real process.
  r = rsrtest::run({notify_, "--pid", pid, "--dry-run"},
                   {{"RSRMEMCTL", ctl_}, {"RSR_SOCKET_DIR", dir_}});
  EXPECT_EQ(r.code, 1) << r.err;
  const Json payload = Json::parse(r.out);
  EXPECT_THAT(payload["text"].get<std::string>(), HasSubstr("(leaky, pid " + pid + "): ["));
}

// Allocation wrappers are passed over when a site is named: xmalloc by the built-in list,
// pool_take by the process's RSR_ALLOCATOR_WRAPPERS, in check-leaks, memory-summary and metric
// labels alike.
TEST_F(LeaksE2eTest, AllocationWrappersArePassedOverWhenNaming) {
  rsrtest::EnvOverrides env = kFastChecks;
  env["RSR_ALLOCATOR_WRAPPERS"] = "pool_*, other_wrapper";
  const pid_t p = start("wrapped", env);
  ASSERT_GT(p, 0);
  const std::string pid = std::to_string(p);
  Result r = poll_until_named(pid, "store_record");
  const Json report = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(names(report, "store_record")) << report.dump(2);
  for (const Json& i : report["leak_indicators"]) {
    if (!i.contains("site")) continue;
    EXPECT_EQ(i["site"]["user_frame"]["function"], "store_record") << i.dump(2);
    EXPECT_THAT(i["message"].get<std::string>(), ::testing::Not(HasSubstr("pool_take")));
    EXPECT_THAT(i["message"].get<std::string>(), ::testing::Not(HasSubstr("xmalloc")));
  }
  r = ctl({"--pid", pid, "memory-summary"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("     in store_record (leak_target.cc:"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("     in xmalloc")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("     in pool_take")));
  ASSERT_EQ(ctl({"--pid", pid, "update-metrics"}).code, 0);
  r = ctl({"--pid", pid, "metrics"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("store_record (leak_target.cc:"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("site=\"xmalloc")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("site=\"pool_take")));
}

// A cache filled from one caller and refreshed from another: the refreshing stack grows while
// the filling one shrinks. Judged by the function as well, neither is reported; the stack
// that grows is listed as passed over.
TEST_F(LeaksE2eTest, ACacheRefreshedFromAnotherStackIsPassedOver) {
  const pid_t p = start("refill", kFastChecks);
  ASSERT_GT(p, 0);
  const std::string pid = std::to_string(p);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the fill is behind the reference
  int passed = 0;
  for (int k = 0; k < 16; ++k) {
    const Result r = ctl({"--pid", pid, "check-leaks", "--format", "json"});
    const Json report = Json::parse(r.out, nullptr, false);
    ASSERT_TRUE(report.is_object()) << r.out << r.err;
    EXPECT_FALSE(names(report, "cache_insert")) << report.dump(1).substr(0, 4000);
    for (const Json& x : report.value("passed_over", Json::array()))
      passed += x.get<std::string>().find("cache_insert") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_GT(passed, 0) << "the refreshing stack never grew alone: the test shows nothing";
}

TEST_F(LeaksE2eTest, SteadyProgramHasNoIndicators) {
  const pid_t steady = start("steady", kFastChecks);
  ASSERT_GT(steady, 0);
  Result r;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(12);
  while (Clock::now() < deadline) {
    r = ctl({"--pid", std::to_string(steady), "check-leaks"});
    if (r.code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("No leak indicators found ("));
  EXPECT_THAT(r.out, HasSubstr(" of history, "));
}

TEST_F(LeaksE2eTest, DisabledIsRefusedAndHealthStaysHealthy) {
  rsrtest::EnvOverrides env = kFastChecks;
  env["RSR_LEAK_DETECTION_ENABLED"] = "false";
  const pid_t p = start("steady", env);
  ASSERT_GT(p, 0);
  Result r = ctl({"--pid", std::to_string(p), "check-leaks"});
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("RSR_LEAK_DETECTION_ENABLED"));

  r = ctl({"--pid", std::to_string(p), "health-check"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Status: healthy\n"));
  EXPECT_THAT(r.out, HasSubstr("  leak_detection: disabled\n"));

  r = rsrtest::run({notify_, "--pid", std::to_string(p), "--dry-run"},
                   {{"RSRMEMCTL", ctl_}, {"RSR_SOCKET_DIR", dir_}});
  EXPECT_EQ(r.code, 4) << r.out << r.err;
}

}  // namespace
