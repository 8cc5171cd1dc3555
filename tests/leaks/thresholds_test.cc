// The heap- and process-wide indicators against their thresholds, and the off switch:
//   - high_memory fires when RSS is above RSR_LEAK_MEMORY_THRESHOLD_MB and not when it is below:
//     `hold 48` is measured once, then run twice, with the threshold 8 MiB below and 8 MiB above
//     the measured RSS (8 MiB: well beyond the few hundred KiB RSS varies by between runs);
//   - memory_growth fires when the exact live heap grows by more than RSR_LEAK_GROWTH_THRESHOLD
//     over the window and not when it grows by less: threshold 0.5, `hold 32` grows by 80% in
//     one process and by 20% in another, after four flat checks;
//   - RSR_LEAK_DETECTION_ENABLED=false: check_leaks is refused naming the setting, `health` shows
//     leak_detection disabled, `status` shows leaks.enabled false and no checks run.
// The processes of each test run side by side, each with its own socket directory.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <thread>

#include "leak_support.h"

namespace {

using nlohmann::json;
constexpr double kMiB = 1048576.0;

struct Held {
  std::unique_ptr<rt::TempDir> dir;
  std::unique_ptr<rt::Process> proc;
  int64_t checks_at_held = 0;  // background checks done when the memory was held
  pid_t pid() const { return proc->pid(); }
  std::string socket_dir() const { return dir->path(); }
};

// Starts `hold <mib>` with the base settings plus `extra`, and waits until it holds the memory and
// its socket answers.
Held start_hold(int mib, const std::map<std::string, std::string>& extra) {
  Held h;
  h.dir = std::make_unique<rt::TempDir>("rsrleak");
  rt::Spawn s;
  s.argv = {rt::program("hold"), std::to_string(mib)};
  s.socket_dir = h.dir->path();
  s.env = lk::base_env();
  for (const auto& [k, v] : extra) s.env[k] = v;
  h.proc = std::make_unique<rt::Process>(s);
  if (!h.proc->started()) return h;
  auto line = h.proc->read_until([](const std::string& l) { return l.rfind("held ", 0) == 0; }, 20000);
  EXPECT_TRUE(line) << h.proc->describe();
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(h.dir->path(), h.proc->pid(), 20000, &hello)) << hello.describe();
  const rt::Reply r = lk::check_leaks(h.dir->path(), h.proc->pid());
  h.checks_at_held = r.served() ? std::max<int64_t>(0, lk::checks_of(r.json)) : 0;
  return h;
}

void stop(Held& h) {
  h.proc->write("quit\n");
  h.proc->close_stdin();
  const auto st = h.proc->wait(10000);
  ASSERT_TRUE(st) << h.proc->describe();
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << h.proc->describe();
}

// reply[key] without the undefined behaviour of operator[] on a missing key of a const object.
const json& get(const json& j, const char* key) {
  static const json null_value;
  return j.is_object() && j.contains(key) ? j[key] : null_value;
}

// The first indicator of `type`, pointing into `reply` (which must outlive the pointer).
const json* find_type(const json& reply, const std::string& type) {
  const json& inds = get(reply, "indicators");
  if (!inds.is_array()) return nullptr;
  for (const auto& ind : inds)
    if (ind.is_object() && ind.value("type", std::string()) == type) return &ind;
  return nullptr;
}

// Waits until the process has done `n` background checks since it held its memory. A level trails
// by up to five probes (0.5 s), so the first point recorded after "held" may still be partly
// below it; n >= 2 gives points that are wholly after it.
void wait_checks(const Held& h, int64_t n) {
  n += h.checks_at_held;
  const auto t0 = lk::Clock::now();
  int64_t checks = -1;
  while (lk::seconds_since(t0) < 30) {
    const rt::Reply r = lk::check_leaks(h.socket_dir(), h.pid());
    ASSERT_TRUE(r.served()) << r.describe();
    checks = lk::checks_of(r.json);
    if (checks >= n) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(lk::kPollMs));
  }
  FAIL() << "only " << checks << " background checks after 30 s (wanted " << n << ")";
}

TEST(HighMemory, FiresAboveTheThresholdAndNotBelow) {
  // Calibration: the RSS of `hold 48` under the preload with the test settings.
  int64_t rss = 0;
  {
    Held cal = start_hold(48, {});
    ASSERT_TRUE(cal.proc->started());
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // library threads up, first check done
    for (int i = 0; i < 5; ++i) {
      rss = std::max(rss, lk::rss_bytes(cal.pid()));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop(cal);
  }
  ASSERT_GT(rss, 48 * kMiB) << "hold 48 does not hold 48 MiB resident";
  const int64_t below_mb = static_cast<int64_t>(std::floor(rss / kMiB)) - 8;  // RSS is above this one
  const int64_t above_mb = static_cast<int64_t>(std::ceil(rss / kMiB)) + 8;   // and below this one
  std::printf("[ highmem  ] hold 48 has RSS %.1f MiB: thresholds %lld MiB (must fire) and %lld MiB (must not)\n",
              rss / kMiB, static_cast<long long>(below_mb), static_cast<long long>(above_mb));

  Held over = start_hold(48, {{"RSR_LEAK_MEMORY_THRESHOLD_MB", std::to_string(below_mb)}});
  Held under = start_hold(48, {{"RSR_LEAK_MEMORY_THRESHOLD_MB", std::to_string(above_mb)}});
  ASSERT_TRUE(over.proc->started() && under.proc->started());
  wait_checks(over, 2);
  wait_checks(under, 2);

  const std::string program = rt::program("hold");
  lk::PollTrace trace_over, trace_under;
  int polls = 0;
  int64_t first_checks = -1, last_checks = -1;
  const auto t0 = lk::Clock::now();
  while (lk::seconds_since(t0) < 4.0) {  // four intervals
    const rt::Reply a = lk::check_leaks(over.socket_dir(), over.pid());
    const rt::Reply b = lk::check_leaks(under.socket_dir(), under.pid());
    const int64_t rss_a = lk::rss_bytes(over.pid()), rss_b = lk::rss_bytes(under.pid());
    ASSERT_TRUE(a.served()) << a.describe();
    ASSERT_TRUE(b.served()) << b.describe();
    const double t = lk::seconds_since(t0);
    trace_over.add(t, a.json, program);
    trace_under.add(t, b.json, program);
    ++polls;
    if (first_checks < 0) first_checks = lk::checks_of(a.json);
    last_checks = lk::checks_of(a.json);
    // The test's own premise: each RSS is on its intended side of its threshold.
    ASSERT_GT(rss_a, below_mb * kMiB) << "RSS " << rss_a << " fell below the 'over' threshold: test premise broken";
    ASSERT_LT(rss_b, above_mb * kMiB) << "RSS " << rss_b << " rose above the 'under' threshold: test premise broken";

    bool failed = false;  // stop at the first poll that fails: one report is enough
    EXPECT_EQ(get(a.json, "thresholds").value("memory_bytes", int64_t{-1}), below_mb * 1048576)
        << "thresholds.memory_bytes is RSR_LEAK_MEMORY_THRESHOLD_MB in bytes";
    const json* hm = find_type(a.json, "high_memory");
    failed |= hm == nullptr || find_type(b.json, "high_memory") != nullptr;
    EXPECT_NE(hm, nullptr) << "RSS " << rss_a / kMiB << " MiB > threshold " << below_mb
                           << " MiB, but no high_memory:\n" << trace_over.str();
    if (hm) {
      EXPECT_EQ(hm->value("from_bytes", int64_t{-1}), below_mb * 1048576) << hm->dump();
      EXPECT_NEAR(hm->value("to_bytes", 0.0), static_cast<double>(rss_a), 0.1 * rss_a) << "to_bytes is the RSS: " << hm->dump();
      // RSS is less than 2x the threshold: MEDIUM (protocol.md, severities).
      EXPECT_EQ(hm->value("severity", std::string()), "MEDIUM") << hm->dump();
      if (get(*hm, "growth_ratio").is_number())
        EXPECT_NEAR(get(*hm, "growth_ratio").get<double>(), hm->value("to_bytes", 0.0) / (below_mb * kMiB) - 1, 0.01) << hm->dump();
      else
        ADD_FAILURE() << "high_memory growth_ratio is not a number: " << hm->dump();
    }
    EXPECT_EQ(find_type(b.json, "high_memory"), nullptr)
        << "RSS " << rss_b / kMiB << " MiB < threshold " << above_mb << " MiB, yet high_memory:\n" << trace_under.str();
    if (failed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(lk::kPollMs));
  }
  // The polls spanned several background checks (each poll is judged on its own: RSS "now").
  EXPECT_GE(polls, 4);
  EXPECT_GE(last_checks - first_checks, 3);
  stop(over);
  stop(under);
}

TEST(MemoryGrowth, FiresAboveTheGrowthThresholdAndNotBelow) {
  const std::map<std::string, std::string> env = {{"RSR_LEAK_GROWTH_THRESHOLD", "0.5"}};
  Held fast = start_hold(32, env);  // grows by 80%
  Held slow = start_hold(32, env);  // grows by 20%
  ASSERT_TRUE(fast.proc->started() && slow.proc->started());
  const std::string program = rt::program("hold");

  // Flat checks first: from 5 checks after "held" on, the 3-check window holds only points wholly
  // after it (see wait_checks).
  wait_checks(fast, 5);
  wait_checks(slow, 5);
  for (Held* h : {&fast, &slow}) {
    const rt::Reply r = lk::check_leaks(h->socket_dir(), h->pid());
    ASSERT_TRUE(r.served()) << r.describe();
    EXPECT_EQ(find_type(r.json, "memory_growth"), nullptr) << "memory_growth before any growth: " << r.payload.substr(0, 2000);
    EXPECT_DOUBLE_EQ(get(r.json, "thresholds").value("growth", -1.0), 0.5);
  }

  int64_t grow_checks_fast = -1;
  {
    const rt::Reply r = lk::check_leaks(fast.socket_dir(), fast.pid());
    ASSERT_TRUE(r.served());
    grow_checks_fast = lk::checks_of(r.json);
  }
  fast.proc->write("grow 80\n");
  slow.proc->write("grow 20\n");
  ASSERT_TRUE(fast.proc->read_until([](const std::string& l) { return l.rfind("grown ", 0) == 0; }, 20000));
  ASSERT_TRUE(slow.proc->read_until([](const std::string& l) { return l.rfind("grown ", 0) == 0; }, 20000));

  lk::PollTrace trace_fast, trace_slow;
  int64_t found_at = -1;
  bool slow_fired = false;
  const json* seen = nullptr;
  json seen_reply;
  const auto t0 = lk::Clock::now();
  // Five intervals: long enough for the growth to pass through the whole 3-check window.
  while (lk::seconds_since(t0) < 5.0) {
    const rt::Reply a = lk::check_leaks(fast.socket_dir(), fast.pid());
    const rt::Reply b = lk::check_leaks(slow.socket_dir(), slow.pid());
    ASSERT_TRUE(a.served()) << a.describe();
    ASSERT_TRUE(b.served()) << b.describe();
    const double t = lk::seconds_since(t0);
    trace_fast.add(t, a.json, program);
    trace_slow.add(t, b.json, program);
    // The first report may come while the level is still catching up with the growth (a level is
    // the lowest of the last five probes); the figures are checked on the largest report.
    if (const json* mg = find_type(a.json, "memory_growth")) {
      if (found_at < 0) found_at = lk::checks_of(a.json);
      if (!seen || get(*mg, "growth_bytes").get<double>() > get(*seen, "growth_bytes").get<double>()) {
        seen_reply = a.json;
        seen = find_type(seen_reply, "memory_growth");
      }
    }
    if (!slow_fired && find_type(b.json, "memory_growth")) {
      slow_fired = true;  // reported once, below, with the whole trace
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(lk::kPollMs));
  }
  EXPECT_FALSE(slow_fired) << "the heap grew by 20% with a 0.5 threshold, yet memory_growth:\n" << trace_slow.str();
  ASSERT_GE(found_at, 0) << "the heap grew by 80% with a 0.5 threshold, but no memory_growth:\n" << trace_fast.str();
  EXPECT_LE(found_at - grow_checks_fast, 3) << "memory_growth appeared only " << found_at - grow_checks_fast
                                            << " checks after the growth:\n" << trace_fast.str();
  // The figures of the largest report. Growing by 80% takes 0.2..0.5 s here (page faults), so a
  // check's level (the lowest of five probes 0.1 s apart) may catch the heap part-way, and the
  // window's older point may be such a point: the report must then understate, never overstate.
  ASSERT_NE(seen, nullptr);
  const rt::Reply after = rt::summary(fast.socket_dir(), fast.pid(), 0);
  ASSERT_TRUE(after.served()) << after.describe();
  const double live_after = static_cast<double>(rt::heap_field(after, "live_bytes"));
  const double from = seen->value("from_bytes", 0.0), to = seen->value("to_bytes", 0.0);
  ASSERT_TRUE(get(*seen, "growth_ratio").is_number()) << seen->dump();
  const double ratio = get(*seen, "growth_ratio").get<double>();
  EXPECT_NEAR(ratio, to / from - 1, 1e-6) << "growth_ratio is to/from - 1: " << seen->dump();
  EXPECT_NEAR(seen->value("growth_bytes", 0.0), to - from, 1) << seen->dump();
  EXPECT_GT(ratio, 0.5) << seen->dump();
  EXPECT_LE(ratio, 0.82) << "more growth than the heap had: " << seen->dump();
  EXPECT_NEAR(to, live_after, 0.01 * live_after) << "to_bytes is the live heap after the growth: " << seen->dump();
  EXPECT_GE(from, 32 * kMiB) << "from_bytes below what was held before the growth: " << seen->dump();
  // Between the threshold (0.5) and 4x it: HIGH.
  EXPECT_EQ(seen->value("severity", std::string()), "HIGH") << seen->dump();
  stop(fast);
  stop(slow);
}

TEST(Disabled, CheckLeaksRefusedNamingTheSettingAndHealthSaysDisabled) {
  Held off = start_hold(4, {{"RSR_LEAK_DETECTION_ENABLED", "false"}});
  Held on = start_hold(4, {});
  ASSERT_TRUE(off.proc->started() && on.proc->started());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // two intervals: no check may run

  const rt::Reply refused = lk::check_leaks(off.socket_dir(), off.pid());
  EXPECT_FALSE(refused.served()) << refused.describe();
  ASSERT_EQ(refused.status, rt::Reply::Status::kOk) << "want an error frame: " << refused.describe();
  EXPECT_EQ(refused.kind, rsr::proto::Kind::kError) << refused.describe();
  EXPECT_EQ(refused.json.value("ok", true), false) << refused.describe();
  EXPECT_NE(refused.json.value("error", std::string()).find("RSR_LEAK_DETECTION_ENABLED"), std::string::npos)
      << "the refusal must name the setting: " << refused.describe();

  const rt::Reply health = rt::query(rt::socket_path(off.socket_dir(), off.pid()), R"({"cmd":"health"})");
  ASSERT_TRUE(health.served()) << health.describe();
  ASSERT_TRUE(health.json.contains("components") && health.json["components"].contains("leak_detection"))
      << health.payload;
  EXPECT_EQ(get(get(health.json, "components"), "leak_detection").value("status", std::string()), "disabled") << health.payload;

  const rt::Reply status = rt::query(rt::socket_path(off.socket_dir(), off.pid()), R"({"cmd":"status"})");
  ASSERT_TRUE(status.served()) << status.describe();
  ASSERT_TRUE(status.json.contains("leaks")) << "status has no `leaks`: " << status.payload.substr(0, 1500);
  EXPECT_EQ(get(status.json, "leaks").value("enabled", true), false) << get(status.json, "leaks").dump();
  // Every field protocol.md lists is there, and nothing ran: no check, nothing detected.
  const json& leaks = get(status.json, "leaks");
  for (const char* k : {"interval_s", "checks", "detected"})
    EXPECT_TRUE(leaks.contains(k)) << "status.leaks lacks " << k << ": " << leaks.dump();
  EXPECT_EQ(leaks.value("checks", int64_t{-1}), 0) << "background checks ran while disabled: " << leaks.dump();
  EXPECT_EQ(lk::detected_total(leaks, ""), 0) << leaks.dump();
  // Everything else keeps working.
  EXPECT_TRUE(rt::summary(off.socket_dir(), off.pid()).served());

  // The same program with detection on (the default): served, health ok, checks running.
  const rt::Reply served = lk::check_leaks(on.socket_dir(), on.pid());
  EXPECT_TRUE(served.served()) << served.describe();
  EXPECT_GE(lk::checks_of(served.json), 1) << served.payload.substr(0, 1000);
  const rt::Reply on_health = rt::query(rt::socket_path(on.socket_dir(), on.pid()), R"({"cmd":"health"})");
  ASSERT_TRUE(on_health.served()) << on_health.describe();
  EXPECT_EQ(get(get(on_health.json, "components"), "leak_detection").value("status", std::string()), "ok") << on_health.payload;
  const rt::Reply on_status = rt::query(rt::socket_path(on.socket_dir(), on.pid()), R"({"cmd":"status"})");
  ASSERT_TRUE(on_status.served());
  EXPECT_EQ(on_status.json.value("leaks", json::object()).value("enabled", false), true) << on_status.payload.substr(0, 1500);
  stop(off);
  stop(on);
}

}  // namespace
