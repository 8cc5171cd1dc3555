// The figures for the README: detection delay of the planted leak over R runs, and false
// positives of the leak-free program over K background checks, printed as one line
//   LEAK-QUALITY detection_delay_checks median=M max=X runs=R false_positives=F checks=K
// and asserted against the quality bar (max delay <= 3 check intervals, no false positive but
// the one brief episode per service the check's budget allows: lk::AlarmEpisodes).
//
// R planted-leak runs (planted.h) go one after another while two `steady` processes run beside
// them for at least LEAK_QUALITY_STEADY_S seconds each once settled (polled once per interval;
// their background checks after settling are the K checks, and the growth of `detected` over
// them counts what those checks reported).
// Environment (for scripts/by hand, see measure.sh): LEAK_QUALITY_RUNS (default 5),
// LEAK_QUALITY_STEADY_S (default 30).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "planted.h"

namespace {

using nlohmann::json;

int env_int(const char* name, int fallback) {
  const char* v = getenv(name);
  return v && *v ? std::max(1, atoi(v)) : fallback;
}

struct SteadyResult {
  std::string error;
  int64_t checks = 0;
  int64_t detected = 0;    // indicators counted by background checks
  int polls = 0, dirty_polls = 0;
  lk::AlarmEpisodes alarms;
  std::string trace;
};

void run_steady(double min_seconds, const std::atomic<bool>* others_done, SteadyResult* out) {
  const std::string program = rt::program("steady");
  rt::TempDir dir("rsrleak");
  rt::Spawn s;
  s.argv = {program};
  s.socket_dir = dir.path();
  s.env = lk::base_env();
  const auto spawned = lk::Clock::now();
  rt::Process p(s);
  if (!p.started() || !p.read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, 20000) ||
      !rt::wait_for_socket(dir.path(), p.pid(), 20000)) {
    out->error = "steady did not start: " + p.describe();
    return;
  }
  lk::PollTrace trace;
  const auto t0 = lk::Clock::now();
  json first, last;
  // Judged from stable_after(ready) (false_positive_test.cc says why).
  const double ready_s = lk::seconds_since(spawned) - lk::seconds_since(t0);
  const double settle = lk::stable_after(ready_s) - ready_s;
  std::this_thread::sleep_for(std::chrono::duration<double>(settle));
  while (lk::seconds_since(t0) < settle + min_seconds || !others_done->load()) {
    if (lk::seconds_since(t0) > 180) break;
    const rt::Reply r = lk::check_leaks(dir.path(), p.pid());
    if (!r.served()) {
      out->error = "check_leaks not served: " + r.describe();
      break;
    }
    ++out->polls;
    if (first.is_null()) first = r.json;
    last = r.json;
    const bool indicators = !r.json.value("indicators", json::array()).empty();
    out->alarms.poll(lk::seconds_since(t0), indicators);
    if (indicators) {
      ++out->dirty_polls;
      trace.add(lk::seconds_since(t0), r.json, program);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(lk::kIntervalMs));
  }
  out->checks = std::max<int64_t>(0, lk::checks_of(last) - lk::checks_of(first));
  out->detected = lk::detected_total(last) - lk::detected_total(first);
  out->trace = trace.str();
  if (out->detected != 0)
    out->trace += "  detected when settled: " + first.value("detected", json()).dump() +
                  "\n  detected at the end:    " + last.value("detected", json()).dump() + "\n" +
                  lk::describe_sites(dir.path(), p.pid(), program);
  p.close_stdin();
  p.wait(10000);
}

TEST(Quality, DetectionDelayAndFalsePositives) {
  const int runs = env_int("LEAK_QUALITY_RUNS", 5);
  const double steady_s = env_int("LEAK_QUALITY_STEADY_S", 30);
  std::atomic<bool> planted_done{false};
  SteadyResult steady[2];
  std::thread steady_threads[2];
  for (int i = 0; i < 2; ++i) steady_threads[i] = std::thread(run_steady, steady_s, &planted_done, &steady[i]);

  std::vector<int64_t> delays;
  std::vector<std::string> failures;
  for (int i = 0; i < runs; ++i) {
    const lk::PlantedResult r = lk::run_planted_leak(lk::PlantedOptions{});
    if (!r.setup_error.empty()) {
      failures.push_back("run " + std::to_string(i) + ": " + r.setup_error + "\n" + r.process.substr(0, 2000));
      continue;
    }
    if (!r.found) {
      failures.push_back("run " + std::to_string(i) + ": leak not found\n" + r.trace + r.sites);
      continue;
    }
    delays.push_back(r.delay_checks());
    std::printf("[ run %d    ] delay %lld check interval(s) (significant at checks=%lld, found at checks=%lld)\n", i,
                static_cast<long long>(r.delay_checks()), static_cast<long long>(r.checks_at_significant),
                static_cast<long long>(r.checks_at_found));
    if (r.delay_checks() > 3) failures.push_back("run " + std::to_string(i) + ": delay " + std::to_string(r.delay_checks()) + "\n" + r.trace + r.sites);
  }
  planted_done = true;
  for (auto& t : steady_threads) t.join();

  int64_t checks = 0, false_positives = 0;
  int polls = 0, dirty = 0;
  for (const auto& s : steady) {
    EXPECT_TRUE(s.error.empty()) << s.error;
    checks += s.checks;
    false_positives += s.detected;
    polls += s.polls;
    dirty += s.dirty_polls;
    EXPECT_LE(s.alarms.episodes(), lk::kMaxAlarmEpisodes) << s.trace;
    EXPECT_LE(s.alarms.longest_s(), lk::kMaxAlarmEpisodeS) << s.trace;
    EXPECT_LE(s.detected, lk::kMaxBackgroundAlarms) << s.trace;
  }
  std::sort(delays.begin(), delays.end());
  double median = -1;
  if (!delays.empty()) {
    const size_t n = delays.size();
    median = n % 2 ? static_cast<double>(delays[n / 2]) : (delays[n / 2 - 1] + delays[n / 2]) / 2.0;
  }
  const long long max_delay = delays.empty() ? -1 : static_cast<long long>(delays.back());
  std::printf("LEAK-QUALITY detection_delay_checks median=%g max=%lld runs=%zu false_positives=%lld checks=%lld\n",
              median, max_delay, delays.size(), static_cast<long long>(false_positives), static_cast<long long>(checks));
  std::printf("[ steady   ] on-demand polls: %d, with indicators: %d\n", polls, dirty);
  std::fflush(stdout);
  RecordProperty("detection_delay_median", std::to_string(median));
  RecordProperty("detection_delay_max", std::to_string(max_delay));
  RecordProperty("false_positives", std::to_string(false_positives));
  RecordProperty("checks", std::to_string(checks));

  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(static_cast<int>(delays.size()), runs);
  EXPECT_LE(max_delay, 3);
  EXPECT_GE(checks, static_cast<int64_t>(2 * (steady_s - 2)));
}

}  // namespace
