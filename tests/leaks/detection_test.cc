// Leak detection finds a planted leak by its function, and only it (SPEC section 4, quality bar):
//   - PlantedLeak: `service` leaks in register_session while an LRU cache fills and plateaus in
//     cache_lookup and two threads churn in churn_worker. register_session must appear in a
//     site_growth or accumulation indicator within three check intervals of the leak becoming
//     significant; cache_lookup (once stable) and churn_worker must never appear over >= 8 checks.
//   - PreFork: of a parent and three forked workers, only the worker that leaks names the leaking
//     function; every process answers with its own detector (its own pid, its own checks).
// planted.h explains the timeline and what "significant" and "stable" mean; leak_support.h the
// settings and how functions are found.
#include <gtest/gtest.h>

#include <algorithm>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <thread>

#include "planted.h"

namespace {

using lk::Clock;
using nlohmann::json;

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n  " + x;
  return s;
}

TEST(PlantedLeak, FoundWithinThreeChecksAndCacheAndChurnNeverReported) {
  lk::PlantedOptions o;
  o.observe_stable_intervals = 8;
  const lk::PlantedResult r = lk::run_planted_leak(o);
  ASSERT_TRUE(r.setup_error.empty()) << r.setup_error << "\n" << r.process;
  const std::string context = "\npolls:\n" + r.trace + r.sites + "service: " + r.process.substr(0, 3000);
  if (getenv("LEAK_TEST_VERBOSE")) std::printf("polls:\n%s", r.trace.c_str());

  EXPECT_TRUE(r.schema.empty()) << "check_leaks reply does not match protocol.md:" << list(r.schema) << context;
  EXPECT_TRUE(r.poll_errors.empty()) << "check_leaks not served:" << list(r.poll_errors) << context;
  ASSERT_TRUE(r.found) << "register_session never appeared in a site_growth or accumulation indicator within "
                       << o.give_up_intervals << " intervals of becoming significant" << context;
  std::printf("[ planted  ] leak significant at checks=%lld, found at checks=%lld (t=%.2fs after it started): "
              "delay %lld check interval(s)\n",
              static_cast<long long>(r.checks_at_significant), static_cast<long long>(r.checks_at_found),
              r.t_found - r.t_leak, static_cast<long long>(r.delay_checks()));
  EXPECT_LE(r.delay_checks(), 3) << "found at checks=" << r.checks_at_found << ", significant at checks="
                                 << r.checks_at_significant << context;
  // Measured, not asserted: the contract lets accumulation lapse when the current level (newest
  // point of an on-demand check) is not yet above the last stored point, which happens in the
  // first probes after each background check; an operator querying then does not see the leak.
  std::printf("[ planted  ] after detection, %zu of %d polls did not name register_session%s\n",
              r.missed_after_found.size(), r.polls_after_found, list(r.missed_after_found).c_str());

  // The stable phase really spanned >= 8 background checks.
  ASSERT_GE(r.checks_at_stable, 0) << context;
  EXPECT_GE(r.checks_at_end - r.checks_at_stable, 8)
      << "observed only " << r.checks_at_end - r.checks_at_stable << " checks after the cache became stable" << context;
  EXPECT_TRUE(r.cache_reported.empty()) << "cache_lookup reported after the cache was full and stable:"
                                        << list(r.cache_reported) << context;
  EXPECT_TRUE(r.churn_reported.empty()) << "churn_worker reported:" << list(r.churn_reported) << context;
  // The background checks counted it too (protocol.md: `detected`).
  EXPECT_GT(r.detected_site_indicators, 0) << "no site_growth/accumulation in `detected` after "
                                           << r.checks_at_end << " checks" << context;
  EXPECT_EQ(r.exit_status, "exit 0") << context;
}

// ---------------------------------------------------------------------------------------------

struct Member {
  std::string name;
  pid_t pid = -1;
  bool leaks = false;
  bool named_leak = false;  // an indicator named leaky_worker_store
  int64_t checks_at_significant = -1, checks_at_found = -1, last_checks = -1;
  std::vector<std::string> errors;
  lk::PollTrace trace;
};

TEST(PreFork, OnlyTheLeakingWorkerReportsTheLeak) {
  const std::string program = rt::program("prefork_leak");
  rt::TempDir dir("rsrleak");
  rt::Spawn s;
  s.argv = {program};
  s.socket_dir = dir.path();
  s.env = lk::base_env();
  rt::Process p(s);
  ASSERT_TRUE(p.started());
  std::vector<Member> members(4);
  for (int seen = 0; seen < 4;) {
    auto line = p.read_line(20000);
    ASSERT_TRUE(line) << p.describe();
    std::istringstream in(*line);
    std::string word;
    in >> word;
    if (word == "worker") {
      int index = -1, pid = -1;
      in >> index >> pid;
      ASSERT_TRUE(index >= 0 && index < 3) << *line;
      members[index].name = "worker " + std::to_string(index);
      members[index].pid = pid;
      members[index].leaks = index == 1;
      ++seen;
    } else if (word == "parent") {
      int pid = -1;
      in >> pid;
      members[3].name = "parent";
      members[3].pid = pid;
      ++seen;
    }
  }
  const auto t0 = Clock::now();  // the leaking worker started leaking just before its line
  for (const auto& m : members) {
    rt::Reply hello;
    ASSERT_TRUE(rt::wait_for_socket(dir.path(), m.pid, 20000, &hello)) << m.name << ": " << hello.describe();
  }
  // Records of 2048 bytes (usable 2056) at 256 KiB/s of requested bytes.
  const double rate = 262144.0 / 2048 * 2056;
  const double t_sig = static_cast<double>(lk::kMinSiteBytes) / rate;
  // Everyone is watched for as long as the leaker needs at most (three checks after significance,
  // plus one of slack), and at least eight intervals.
  // The operator's view of the same family: `rsrmemctl --all check-leaks` names the leak in the
  // leaking worker's block only, and exits 1 because one process has indicators. A check judges
  // the growth of the moment: on a loaded machine one check may see only the process's growth,
  // so the leaking worker gets a few checks to name its site, taken while it leaks, from the
  // moment its own checks name it; the other workers must never name it.
  const std::string cmd = "RSR_SOCKET_DIR='" + dir.path() + "' '" + rt::ctl_path() + "' --all check-leaks --format json";
  std::map<pid_t, bool> named;
  std::string last;
  int attempts = 0;
  bool all_done = false;
  // One `--all` check; true once the leaking worker has named its leak in one of them.
  const auto all_attempt = [&]() -> bool {
    ++attempts;
    std::string out;
    int status = -1;
    if (FILE* f = popen(cmd.c_str(), "r")) {
      char buf[65536];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
      status = pclose(f);
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << "status " << status << "\n" << out.substr(0, 2000);
    const json all_report = json::parse(out, nullptr, false);
    EXPECT_TRUE(all_report.is_object()) << out.substr(0, 2000);
    if (!all_report.is_object()) return false;
    bool done = true;
    for (const auto& m : members) {
      const std::string key = std::to_string(m.pid);
      EXPECT_TRUE(all_report.contains(key)) << m.name << " missing from --all\n" << out.substr(0, 2000);
      if (!all_report.contains(key)) return false;
      bool names_leak = false;
      for (const auto& ind : all_report[key].value("leak_indicators", json::array())) {
        if (ind.contains("site") && ind["site"].value("user_frame", json::object()).value("function", "") ==
                                        "leaky_worker_store")
          names_leak = true;
      }
      if (!m.leaks) {
        EXPECT_FALSE(names_leak) << m.name << " names the other worker's leak in --all:\n" << all_report[key].dump(1).substr(0, 3000);
      }
      named[m.pid] = named[m.pid] || names_leak;
      if (m.leaks && !named[m.pid]) {
        done = false;
        last = m.name + " in --all:\n" + all_report[key].dump(1).substr(0, 3000);
      }
    }
    return done;
  };
  const double watch_s = std::max(8.0, t_sig + 5.0);
  while (lk::seconds_since(t0) < watch_s) {
    for (auto& m : members) {
      const rt::Reply r = lk::check_leaks(dir.path(), m.pid);
      const double t = lk::seconds_since(t0);
      if (!r.served()) {
        m.errors.push_back("t=" + std::to_string(t) + " " + r.describe().substr(0, 300));
        continue;
      }
      m.trace.add(t, r.json, program);
      if (r.json.value("pid", int64_t{-1}) != m.pid)
        m.errors.push_back("reply from pid " + std::to_string(r.json.value("pid", int64_t{-1})));
      const int64_t checks = lk::checks_of(r.json);
      m.last_checks = checks;
      if (t >= t_sig && m.checks_at_significant < 0) m.checks_at_significant = checks;
      for (const auto& ind : r.json.value("indicators", json::array())) {
        if (lk::names_function(r.json, ind, program, "leaky_worker_store") && !m.named_leak) {
          m.named_leak = true;
          m.checks_at_found = checks;
        }
      }
    }
    const bool leaker_named = std::any_of(members.begin(), members.end(), [](const Member& m) { return m.leaks && m.named_leak; });
    if (leaker_named && !all_done && attempts < 5) all_done = all_attempt();
    std::this_thread::sleep_for(std::chrono::milliseconds(lk::kPollMs));
  }
  while (!all_done && attempts < 5) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    all_done = all_attempt();
  }
  std::string all;
  for (const auto& m : members) all += m.name + " (pid " + std::to_string(m.pid) + "):\n" + m.trace.str();
  if (getenv("LEAK_TEST_VERBOSE")) std::printf("%s", all.c_str());
  for (const auto& m : members) {
    SCOPED_TRACE(m.name);
    EXPECT_TRUE(m.errors.empty()) << list(m.errors);
    // Each process runs its own detector after fork.
    EXPECT_GE(m.last_checks, 5) << "background checks do not advance in " << m.name << "\n" << all;
    if (m.leaks) {
      ASSERT_TRUE(m.named_leak) << "the leaking worker never named leaky_worker_store\n"
                                << lk::describe_sites(dir.path(), m.pid, program) << all;
      const int64_t delay = m.checks_at_significant < 0 || m.checks_at_found < m.checks_at_significant
                                ? 0
                                : m.checks_at_found - m.checks_at_significant;
      EXPECT_LE(delay, 3) << "found at checks=" << m.checks_at_found << ", significant at checks="
                          << m.checks_at_significant << "\n" << lk::describe_sites(dir.path(), m.pid, program) << all;
    } else {
      EXPECT_FALSE(m.named_leak) << m.name << " names the other worker's leak\n" << all;
    }
  }
  for (const auto& m : members) {
    if (m.leaks) {
      EXPECT_TRUE(named[m.pid]) << "in five checks, " << last;
    }
  }

  p.close_stdin();
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l.rfind("parent done", 0) == 0; }, 20000)) << p.describe();
  const auto st = p.wait(10000);
  ASSERT_TRUE(st) << p.describe();
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

}  // namespace
