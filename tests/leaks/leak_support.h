// Helpers for the leak-detection tests: query `check_leaks`, find which of a program's own
// functions an indicator names, validate replies against common/protocol.md, and keep a compact
// trace of polls for failure messages.
//
// How functions are found (no dependency on rsrmemctl's output). A site's `frames` are raw
// return addresses; the reply's `modules` map says which file holds each address and its load
// bias (`base`). For frames inside the test program itself, address - 1 - base is a file address,
// looked up in the program's symbol table as printed by `nm -C -S --defined-only` (function
// start and size; static and anonymous-namespace functions included, as the programs are not
// stripped). The programs mark the functions the tests name noinline, and are built with
// -fno-optimize-sibling-calls, so those functions are frames of their own. Frames in other
// modules (libstdc++, libc) are ignored: the tests only ask about the program's functions.
//
// Thread-safety: every function may be called from several threads at once (the symbol cache
// is locked); a PollTrace belongs to one thread.
#pragma once

#include <algorithm>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace lk {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The settings every leak test starts from, and why these values:
//  - RSR_LEAK_CHECK_INTERVAL=1: probes then run every 0.1 s (interval/20, at least 0.1 s), a level
//    spans 0.5 s, and the detection window (3 checks) spans 3 s: each test sees 8..20 checks in
//    8..20 s, which keeps the whole suite well under 3 minutes on 2 cores.
//  - RSR_SAMPLE_INTERVAL_BYTES=16384: ~16 samples per second for a 256 KiB/s leak, so a leak
//    passes the sample-count test (n_to - n_from > 3 sqrt(n_to + n_from)) about one second after it
//    starts, and stays significant for tens of seconds. The cost is one stack capture per 16 KiB
//    allocated, tolerable for the test programs' ~100 MB/s of churn.
//  - RSR_LEAK_MIN_SITE_BYTES=262144: above what the programs' request-sized churn can ever hold
//    (2 threads x 96 KiB), so churn cannot pass the absolute test however the levels fall, yet the
//    planted 256 KiB/s leak reaches it in one second.
//  - RSR_LEAK_MEMORY_THRESHOLD_MB=1024: high_memory is exercised by its own test; elsewhere RSS
//    (under 100 MB for every program) stays far below it.
std::map<std::string, std::string> base_env();

constexpr int kIntervalMs = 1000;
constexpr int kPollMs = kIntervalMs / 4;
constexpr int64_t kMinSiteBytes = 262144;

// memory_growth's window in checks: the heap's level now against its level 3 checks ago
// (protocol.md, check_leaks).
constexpr int kWindowChecks = 3;
// A site's reference level is taken an eighth into the process's life (protocol.md).
constexpr double kReferenceAt = 8.0;

// The time (seconds since the program started) from which a change of memory that ended at
// `t_done` (e.g. its caches filled) is behind every reference: the heap's window (kWindowChecks
// checks, levels trailing by up to half a second) and the sites' reference level (an eighth into
// the life, plus a probe), plus the next check and one poll of slack. Earlier reports of the
// change are what the contract allows; later ones are false positives.
inline double stable_after(double t_done) {
  const double interval = kIntervalMs / 1000.0, poll = kPollMs / 1000.0;
  return std::max(t_done + 0.5 + kWindowChecks * interval, kReferenceAt * (t_done + 0.2)) + interval + poll;
}

rt::Reply check_leaks(const std::string& dir, pid_t pid, int timeout_ms = 5000);

// Functions of `program` (its own symbols) among the frames of `site`, resolved with the reply's
// module map. Each name is nm's demangled form, e.g. "(anonymous namespace)::register_session(...)".
std::vector<std::string> site_functions(const json& reply, const json& site, const std::string& program);

// site_growth or accumulation: the indicator types that name a call site.
bool is_site_type(const std::string& type);

// Whether an indicator has a site one of whose frames is in a function of `program` whose name
// contains `function`.
bool names_function(const json& reply, const json& indicator, const std::string& program, const std::string& function);

// Everything the reply violates of the documented `check_leaks` reply (protocol.md); empty when
// it conforms.
std::vector<std::string> schema_problems(const json& reply);

// Sum of the `detected` counts (background checks), optionally of one type.
int64_t detected_total(const json& reply, const std::string& type = "");

// One line per indicator: "type SEVERITY fn1,fn2 growth=N".
std::string describe_indicators(const json& reply, const std::string& program);

// The process's top sites by live bytes (`summary`), one line each with its program functions,
// for failure messages: shows what the sampler holds when an expected report is missing.
std::string describe_sites(const std::string& dir, pid_t pid, const std::string& program, int top = 8);

// False alarms of a leak-free program, as the check's budget makes them. Each check may name a
// site that does not grow with a small probability (alpha, per check: protocol.md); over a young
// process's many overlapping checks that adds up to a brief episode now and then (1-2% of the
// test programs' runs in the simulation: CachesTurningOverAreRarelyNamedInTheirFirstMinute). A
// leak-free program may therefore show one episode (consecutive polls with indicators) of at
// most two check intervals, counted by at most three background checks; anything longer or
// repeated is a false positive the budget does not explain.
class AlarmEpisodes {
 public:
  void poll(double t_s, bool dirty) {
    if (dirty && !in_) {
      ++episodes_;
      start_s_ = t_s;
    }
    if (dirty) longest_s_ = std::max(longest_s_, t_s - start_s_);
    in_ = dirty;
  }
  int episodes() const { return episodes_; }
  double longest_s() const { return longest_s_; }

 private:
  bool in_ = false;
  int episodes_ = 0;
  double start_s_ = 0, longest_s_ = 0;
};
inline constexpr int kMaxAlarmEpisodes = 1;
inline constexpr double kMaxAlarmEpisodeS = 2 * kIntervalMs / 1000.0;
inline constexpr int64_t kMaxBackgroundAlarms = 3;

// A bounded log of polls for failure messages.
class PollTrace {
 public:
  void add(double t_s, const json& reply, const std::string& program);
  void note(double t_s, const std::string& text);
  std::string str() const;

 private:
  std::vector<std::string> lines_;
  size_t dropped_ = 0;
};

double seconds_since(Clock::time_point t0);

// The `checks` field, or -1.
int64_t checks_of(const json& reply);

// Whether the process is still running (not exited, not a zombie).
bool alive(pid_t pid);

// VmRSS of a process in bytes (0 when unreadable).
int64_t rss_bytes(pid_t pid);

}  // namespace lk
