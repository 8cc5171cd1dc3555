// Leak detection over a program's life, on programs with known behaviour (programs/lifecycle.cc)
// run side by side under the preload with the production defaults except a 5 s check interval
// (so 512 KiB sampling, 1 MiB smallest judged growth), polled with `check_leaks` once per check:
//   - slow: a ~90 KiB/s leak under heavy churn beside a 64 MB index: leak_slowly named within 90 s
//     and at every poll after that; build_index (once behind the reference) and churn_worker never;
//   - fast: a ~4 MB/s leak: leak_fast named within three checks and at every poll after that;
//   - sawtooth: a 40 MB batch built and freed every 6.5 s: build_batch and memory_growth never
//     named after the second cycle;
//   - cache: a 64 MB bounded cache: cache_put never named once the fill is behind the reference,
//     memory_growth never once the fill is behind the heap's window.
// At the end, memory-summary's top by growth (rolling baseline) does not list the index.
// A second test: at the production default interval, an on-demand check names a fast leak within
// the first minute.
//
// RSR_LIFECYCLE_SECONDS sets how long (default 120; tests/leaks/measure.sh runs 300 for the
// README's figures). RSR_LIFECYCLE_REPORT=1 prints the figures.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "leak_support.h"

namespace {

using lk::Clock;
using nlohmann::json;

constexpr int kIntervalS = 5;

struct Subject {
  std::string mode;
  std::unique_ptr<rt::TempDir> dir;
  std::unique_ptr<rt::Process> p;
  Clock::time_point started;
  double t_index = -1, t_full = -1, t_cycle2 = -1;
  int cycles = 0;
  lk::PollTrace trace;
  int polls = 0;
  double first_named = -1;            // the leak's function, first poll naming it
  int after_named = 0, missed = 0;    // polls after that, and those not naming it
  std::vector<std::string> false_reports;  // what must not be named, once seen
  std::vector<std::string> errors;
};

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : fallback;
}

bool names(const json& reply, const std::string& program, const std::string& function) {
  for (const json& ind : reply.value("indicators", json::array())) {
    const std::string type = ind.value("type", "");
    if (lk::is_site_type(type) && lk::names_function(reply, ind, program, function))
      return true;
  }
  return false;
}

bool has_type(const json& reply, const std::string& type) {
  for (const json& ind : reply.value("indicators", json::array()))
    if (ind.value("type", "") == type) return true;
  return false;
}

void read_events(Subject& s) {
  while (auto line = s.p->read_line(0)) {
    const double t = lk::seconds_since(s.started);
    if (*line == "index_built") s.t_index = t;
    else if (*line == "cache_full") s.t_full = t;
    else if (line->rfind("cycle ", 0) == 0 && ++s.cycles == 2) s.t_cycle2 = t;
  }
}

// Judges one poll of one subject.
void judge(Subject& s, const json& r, const std::string& program, double t) {
  const auto report = [&](const std::string& what) {
    s.false_reports.push_back("t=" + std::to_string(t) + " " + what + ": " + lk::describe_indicators(r, program));
  };
  const auto leak = [&](const char* function) {
    const bool named = names(r, program, function);
    if (s.first_named < 0) {
      if (named) s.first_named = t;
      return;
    }
    ++s.after_named;
    if (!named) {
      ++s.missed;
      s.trace.note(t, std::string("missed ") + function);
    }
  };
  if (s.mode == "slow") {
    leak("leak_slowly");
    if (names(r, program, "churn_worker")) report("churn_worker");
    if (s.t_index >= 0 && t >= lk::kReferenceAt * (s.t_index + 0.5) + 2 * kIntervalS && names(r, program, "build_index"))
      report("build_index");
  } else if (s.mode == "fast") {
    leak("leak_fast");
    if (names(r, program, "churn_worker")) report("churn_worker");
  } else if (s.mode == "sawtooth") {
    if (s.t_cycle2 >= 0 && t >= s.t_cycle2 + kIntervalS) {
      if (names(r, program, "build_batch")) report("build_batch");
      if (has_type(r, "memory_growth")) report("memory_growth");
    }
  } else if (s.mode == "cache") {
    if (s.t_full >= 0 && t >= lk::kReferenceAt * (s.t_full + 0.5) + 2 * kIntervalS && names(r, program, "cache_put"))
      report("cache_put");
    if (s.t_full >= 0 && t >= s.t_full + (lk::kWindowChecks + 2) * kIntervalS && has_type(r, "memory_growth"))
      report("memory_growth");
  }
}

TEST(Lifecycle, LeaksNamedAtEveryCheckAndNoLeaksNeverOnceSeen) {
  const double seconds = env_seconds("RSR_LIFECYCLE_SECONDS", 120);
  const std::string program = rt::program("lifecycle");
  std::vector<Subject> subjects;
  for (const char* mode : {"slow", "fast", "sawtooth", "cache"}) {
    Subject s;
    s.mode = mode;
    s.dir = std::make_unique<rt::TempDir>("rsrlife");
    rt::Spawn spawn;
    spawn.argv = {program, mode};
    spawn.socket_dir = s.dir->path();
    spawn.env = {{"RSR_LEAK_CHECK_INTERVAL", std::to_string(kIntervalS)}, {"RSR_LEAK_MEMORY_THRESHOLD_MB", "8192"}};
    s.started = Clock::now();
    s.p = std::make_unique<rt::Process>(spawn);
    ASSERT_TRUE(s.p->started()) << mode;
    ASSERT_TRUE(s.p->read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, 20000))
        << mode << ": " << s.p->describe();
    ASSERT_TRUE(rt::wait_for_socket(s.dir->path(), s.p->pid(), 20000)) << mode;
    subjects.push_back(std::move(s));
  }
  const auto t0 = Clock::now();
  for (int k = 1; lk::seconds_since(t0) < seconds; ++k) {
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(k * kIntervalS * 1000));
    for (Subject& s : subjects) {
      read_events(s);
      const rt::Reply r = lk::check_leaks(s.dir->path(), s.p->pid(), 10000);
      const double t = lk::seconds_since(s.started);
      if (!r.served()) {
        s.errors.push_back("t=" + std::to_string(t) + " " + r.describe().substr(0, 300));
        continue;
      }
      ++s.polls;
      s.trace.add(t, r.json, program);
      judge(s, r.json, program, t);
    }
  }
  // The index is not among the top sites by growth (memory-summary's rolling baseline).
  Subject& slow = subjects[0];
  const rt::Reply summary = rt::query(rt::socket_path(slow.dir->path(), slow.p->pid()), R"({"cmd":"summary","top":10})");
  ASSERT_TRUE(summary.served()) << summary.describe();
  for (const json& site : summary.json.value("top_growth", json::array())) {
    for (const std::string& f : lk::site_functions(summary.json, site, program))
      EXPECT_EQ(f.find("build_index"), std::string::npos) << "the start-up index tops growth: " << summary.json.dump().substr(0, 2000);
  }

  const bool report = std::getenv("RSR_LIFECYCLE_REPORT") != nullptr;
  for (Subject& s : subjects) {
    const std::string context = "\n" + s.mode + " polls:\n" + s.trace.str() + s.p->describe().substr(0, 2000);
    EXPECT_LT(s.errors.size(), 2u) << s.mode << ": check_leaks not served: " << (s.errors.empty() ? "" : s.errors[0]);
    EXPECT_GE(s.polls, static_cast<int>(seconds / kIntervalS) - 2) << s.mode;
    std::string reports;
    for (const std::string& x : s.false_reports) reports += "\n  " + x;
    EXPECT_TRUE(s.false_reports.empty()) << s.mode << " named what it must not, once seen:" << reports << context;
    if (s.mode == "slow" || s.mode == "fast") {
      ASSERT_GT(s.first_named, 0) << s.mode << ": the leak was never named" << context;
      EXPECT_LE(s.first_named, s.mode == "slow" ? 90.0 : 3.0 * kIntervalS + 2.5) << s.mode << context;
      EXPECT_EQ(s.missed, 0) << s.mode << ": the leak was not named at " << s.missed << " of " << s.after_named
                             << " polls after its first naming" << context;
    }
    if (report) {
      std::printf("[ lifecycle ] %-8s %d polls over %.0f s; first named at %.0f s, then named at %d of %d polls; %zu false reports\n",
                  s.mode.c_str(), s.polls, seconds, s.first_named, s.after_named - s.missed, s.after_named,
                  s.false_reports.size());
    }
    s.p->close_stdin();
    const std::optional<int> status = s.p->wait(20000);
    EXPECT_TRUE(status && *status == 0) << s.mode << ": " << s.p->describe();
  }
}

// At the production default (checks every 300 s, probes every 5 s), an on-demand check-leaks
// judges on what the process has seen so far: a 4 MB/s leak is named within the first minute,
// long before the first background check.
TEST(Lifecycle, OnDemandVerdictFromTheFirstMinute) {
  const std::string program = rt::program("lifecycle");
  rt::TempDir dir("rsrlife");
  rt::Spawn spawn;
  spawn.argv = {program, "fast"};
  spawn.socket_dir = dir.path();
  spawn.env = {{"RSR_LEAK_MEMORY_THRESHOLD_MB", "8192"}};
  const auto started = Clock::now();
  rt::Process p(spawn);
  ASSERT_TRUE(p.started());
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, 20000)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 20000));
  lk::PollTrace trace;
  double named_at = -1;
  while (named_at < 0 && lk::seconds_since(started) < 60) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const rt::Reply r = lk::check_leaks(dir.path(), p.pid());
    ASSERT_TRUE(r.served()) << r.describe();
    trace.add(lk::seconds_since(started), r.json, program);
    EXPECT_EQ(lk::checks_of(r.json), 0) << "a background check ran before 300 s";
    if (names(r.json, program, "leak_fast")) named_at = lk::seconds_since(started);
  }
  EXPECT_GT(named_at, 0) << "leak_fast not named in the first minute:\n" << trace.str();
  std::printf("[ lifecycle ] default settings: leak_fast named by check-leaks at %.0f s, before any background check\n", named_at);
  p.close_stdin();
  EXPECT_TRUE(p.wait(20000).has_value()) << p.describe();
}

}  // namespace
