// More call sites than the site table holds: their samples land in one unattributed bucket.
// Metrics export it, memory-summary and check-leaks warn, health says degraded and names the
// setting to raise. The same program within the table's capacity is healthy and unwarned.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 60000;

struct Ctl {
  int exit_code;
  std::string out;
};

Ctl ctl(const std::string& dir, pid_t pid, std::vector<std::string> args) {
  Spawn s;
  s.preload = false;
  s.argv = {rt::ctl_path(), "--pid", std::to_string(pid)};
  s.argv.insert(s.argv.end(), args.begin(), args.end());
  s.env["RSR_SOCKET_DIR"] = dir;
  const rt::RunResult r = rt::run(s, kTimeoutMs);
  EXPECT_TRUE(!r.timed_out && WIFEXITED(r.status)) << r.describe() << r.err;
  return {WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1, r.out + r.err};
}

// Starts many_stacks with `max_sites` and runs `check` against it once it holds its memory.
template <class Check>
void with_program(const std::string& max_sites, Check check) {
  TempDir dir;
  Spawn s;
  s.argv = {hostile::program("many_stacks")};
  s.socket_dir = dir.path();
  s.env["RSR_MAX_SITES"] = max_sites;
  s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "4096";
  Process p(s);
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l.rfind("ready", 0) == 0; }, kTimeoutMs))
      << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 10000)) << p.describe();
  check(dir.path(), p.pid());
}

// The value of the first series of `name` whose labels contain `label`, or -1.
double series(const std::string& text, const std::string& name, const std::string& label) {
  const std::regex line("^" + name + "\\{([^}]*)\\} ([0-9.e+]+)$", std::regex::multiline);
  for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it)
    if ((*it)[1].str().find(label) != std::string::npos) return std::stod((*it)[2].str());
  return -1;
}

TEST(Estimates, SitesBeyondTheTableAreExportedWarnedAndDegradeHealth) {
  with_program("64", [](const std::string& dir, pid_t pid) {
    const Ctl metrics = ctl(dir, pid, {"metrics"});
    EXPECT_GT(series(metrics.out, "rsr_dropped_samples_total", "table=\"sites\""), 0) << metrics.out;
    EXPECT_GE(series(metrics.out, "rsr_dropped_samples_total", "table=\"blocks\""), 0) << metrics.out;
    // 136 of the 200 stacks hold 64 KiB each beyond the table: about 8.5 MiB.
    EXPECT_GT(series(metrics.out, "rsr_unattributed_live_bytes", "job="), 4 << 20) << metrics.out;

    const Ctl summary = ctl(dir, pid, {"memory-summary"});
    EXPECT_EQ(summary.exit_code, 0) << summary.out;
    EXPECT_NE(summary.out.find("Warning: "), std::string::npos) << summary.out;
    EXPECT_NE(summary.out.find("raise RSR_MAX_SITES"), std::string::npos) << summary.out;
    EXPECT_NE(summary.out.find("Unattributed"), std::string::npos) << summary.out;

    const Ctl leaks = ctl(dir, pid, {"check-leaks"});
    EXPECT_NE(leaks.out.find("Warning: "), std::string::npos) << leaks.out;

    const Ctl health = ctl(dir, pid, {"health-check"});
    EXPECT_EQ(health.exit_code, 1) << health.out;
    EXPECT_NE(health.out.find("Status: degraded"), std::string::npos) << health.out;
    EXPECT_NE(health.out.find("sampling: degraded ("), std::string::npos) << health.out;

    const Ctl status = ctl(dir, pid, {"status"});
    EXPECT_NE(status.out.find("estimates"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("degraded: "), std::string::npos) << status.out;
  });
}

TEST(Estimates, WithinTheTableAllIsQuiet) {
  with_program("16384", [](const std::string& dir, pid_t pid) {
    const Ctl metrics = ctl(dir, pid, {"metrics"});
    EXPECT_EQ(series(metrics.out, "rsr_dropped_samples_total", "table=\"sites\""), 0) << metrics.out;
    EXPECT_EQ(series(metrics.out, "rsr_unattributed_live_bytes", "job="), 0) << metrics.out;
    const Ctl summary = ctl(dir, pid, {"memory-summary"});
    EXPECT_EQ(summary.out.find("Warning: "), std::string::npos) << summary.out;
    const Ctl health = ctl(dir, pid, {"health-check"});
    EXPECT_EQ(health.exit_code, 0) << health.out;
  });
}

}  // namespace
