// What the hostile tests share beyond tests/preload/harness.h: the programs built here, the
// daemon program's line protocol, the control thread's CPU time, memory figures, and latency
// statistics. Header-only; one test at a time (GoogleTest's order), like the harness.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace hostile {

using Clock = std::chrono::steady_clock;
using rt::Process;
using rt::Spawn;
using rt::TempDir;

inline constexpr int kLineMs = 20000;
inline constexpr int kSocketMs = 10000;

// A program built in tests/hostile/programs ($RSR_HOSTILE_BIN/name).
inline std::string program(const std::string& name) {
  const char* bin = getenv("RSR_HOSTILE_BIN");
  if (!bin || !*bin) {
    ADD_FAILURE() << "RSR_HOSTILE_BIN is not set: run this test through `meson test`";
    return name;
  }
  return std::string(bin) + "/" + name;
}

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The next line of a program's stdout starting with `prefix` ("" when none came within
// timeout_ms; other lines are skipped).
inline std::string await_line(rt::Process& p, const std::string& prefix, int timeout_ms = kLineMs) {
  auto got = p.read_until([&](const std::string& l) { return starts_with(l, prefix); }, timeout_ms);
  return got ? *got : "";
}

// Sends one command line to a program speaking a line protocol and returns its answer line.
inline std::string command(rt::Process& p, const std::string& line, const std::string& prefix,
                           int timeout_ms = kLineMs) {
  if (!p.write(line + "\n")) return "";
  return await_line(p, prefix, timeout_ms);
}

// Asks a program to quit ("quit" for the line-protocol ones, end of input for idle) and expects
// a clean exit.
inline void quit(rt::Process& p) {
  p.write("quit\n");
  p.close_stdin();
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st) << p.describe();
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

// Starts `s` (a program printing "ready <pid>" first) and waits for its socket to answer.
inline rt::Process start_ready(const rt::Spawn& s, const std::string& dir) {
  rt::Process p(s);
  EXPECT_TRUE(p.started());
  auto line = p.read_until([](const std::string& l) { return starts_with(l, "ready "); }, kLineMs);
  EXPECT_TRUE(line) << p.describe();
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir, p.pid(), kSocketMs, &hello)) << hello.describe() << "\n" << p.describe();
  return p;
}

// utime + stime, in clock ticks, of the threads of `pid` named `name` (-1 when none).
inline int64_t thread_ticks(pid_t pid, const std::string& name) {
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  int64_t total = -1;
  for (const std::string& tid : rt::list_dir(task)) {
    std::string comm = rt::read_file(task + "/" + tid + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm != name) continue;
    const std::string stat = rt::read_file(task + "/" + tid + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 2));
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    if (f.size() < 13) continue;  // f[0] is field 3 (state): utime is field 14, stime 15
    total = std::max<int64_t>(total, 0) + std::stoll(f[11]) + std::stoll(f[12]);
  }
  return total;
}

// Share of one CPU the control thread ("rsrmem-ctl") of `pid` used over `ms` milliseconds;
// negative when the thread cannot be found.
inline double control_thread_cpu(pid_t pid, int ms) {
  const int64_t t0 = thread_ticks(pid, "rsrmem-ctl");
  const auto c0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  const int64_t t1 = thread_ticks(pid, "rsrmem-ctl");
  const double wall = std::chrono::duration<double>(Clock::now() - c0).count();
  if (t0 < 0 || t1 < 0) return -1;
  return static_cast<double>(t1 - t0) / static_cast<double>(sysconf(_SC_CLK_TCK)) / wall;
}

// A "Name: N kB" line of /proc/<pid>/status, in kB (-1 when missing).
inline int64_t status_kb(pid_t pid, const char* name) {
  std::istringstream in(rt::read_file("/proc/" + std::to_string(pid) + "/status"));
  const std::string want = std::string(name) + ":";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(want, 0) == 0) return std::atoll(line.c_str() + want.size());
  }
  return -1;
}

// Descriptors open in `pid`.
inline size_t open_fds(pid_t pid) { return rt::list_dir("/proc/" + std::to_string(pid) + "/fd").size(); }

// Median and maximum of a set of latencies, in milliseconds.
struct Latency {
  double median_ms = 0, max_ms = 0;
  int served = 0, asked = 0;
  std::string describe() const {
    char buf[128];
    snprintf(buf, sizeof buf, "%d/%d served, median %.1f ms, max %.1f ms", served, asked, median_ms, max_ms);
    return buf;
  }
};

// Sends `request` `n` times, one after the other, each on a fresh connection (`send_after_ms`
// after connecting).
inline Latency measure(const std::string& sock, const std::string& request, int n, int timeout_ms = 5000,
                       int send_after_ms = 0) {
  std::vector<double> ms;
  Latency l;
  l.asked = n;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    const rt::Reply r = rt::query(sock, request, timeout_ms, send_after_ms);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r.served()) ++l.served;
  }
  std::sort(ms.begin(), ms.end());
  l.median_ms = ms[ms.size() / 2];
  l.max_ms = ms.back();
  return l;
}

// A figure for the test log, where the README's performance notes take their numbers from.
inline void figure(const std::string& name, const std::string& value) {
  ::testing::Test::RecordProperty(name, value);
  printf("figure: %s = %s\n", name.c_str(), value.c_str());
  fflush(stdout);
}

}  // namespace hostile
