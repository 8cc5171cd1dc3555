// RSR_FOLLOW_CHILDREN=false keeps the library out of every program the monitored one starts,
// whatever the parent is: bash and dash (which keep their own copy of the environment and
// export their own setenv), python (subprocess, os.system) and a C program (fork+exec,
// posix_spawn, system). With the default (true) the same children are monitored.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 30000;

struct Parent {
  const char* name;
  std::vector<std::string> argv;  // "@probe" stands for the probe's path, "@spawner" for spawner's
};

void PrintTo(const Parent& p, std::ostream* os) { *os << p.name; }

std::vector<Parent> parents() {
  return {
      {"bash_exec", {"/bin/bash", "-c", "@probe"}},
      {"bash_fork", {"/bin/bash", "-c", "@probe; true"}},
      {"bash_subshell", {"/bin/bash", "-c", "(@probe); x=$(@probe); echo \"$x\""}},
      {"dash_fork", {"/bin/dash", "-c", "@probe; true"}},
      {"python_subprocess", {"python3", "-c", "import subprocess; subprocess.run(['@probe'])"}},
      {"python_system", {"python3", "-c", "import os, sys; sys.stdout.flush(); os.system('@probe')"}},
      {"c_fork_exec", {"@spawner", "fork-exec", "@probe"}},
      {"c_posix_spawn", {"@spawner", "posix_spawn", "@probe"}},
      {"c_system", {"@spawner", "system", "@probe"}},
  };
}

std::string substitute(std::string arg) {
  for (const auto& [token, path] : {std::pair<std::string, std::string>{"@probe", hostile::program("preload_probe")},
                                    {"@spawner", rt::program("spawner")}}) {
    for (size_t at; (at = arg.find(token)) != std::string::npos;) arg.replace(at, token.size(), path);
  }
  return arg;
}

// Runs the parent under the library and returns every probe line its children printed.
std::vector<std::string> probe_lines(const Parent& parent, const std::string& follow, const std::string& preload,
                                     std::string* transcript) {
  TempDir dir;
  Spawn s;
  for (const std::string& a : parent.argv) s.argv.push_back(substitute(a));
  s.socket_dir = dir.path();
  s.preload_path = preload;
  s.env["RSR_FOLLOW_CHILDREN"] = follow;
  const rt::RunResult r = rt::run(s, kTimeoutMs);
  *transcript = r.describe() + "\n" + r.out + r.err;
  EXPECT_FALSE(r.timed_out) << *transcript;
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = r.out.substr(start, nl - start);
    if (line.rfind("probe ", 0) == 0) lines.push_back(line);
  }
  return lines;
}

class FollowChildren : public ::testing::TestWithParam<Parent> {};

TEST_P(FollowChildren, FalseKeepsEveryChildUnmonitored) {
  std::string transcript;
  const auto lines = probe_lines(GetParam(), "false", rt::preload_lib(), &transcript);
  ASSERT_FALSE(lines.empty()) << transcript;
  for (const std::string& line : lines) EXPECT_EQ(line, "probe maps=0 env=[]") << transcript;
}

TEST_P(FollowChildren, TrueMonitorsEveryChild) {
  std::string transcript;
  const auto lines = probe_lines(GetParam(), "true", rt::preload_lib(), &transcript);
  ASSERT_FALSE(lines.empty()) << transcript;
  for (const std::string& line : lines) EXPECT_EQ(line, "probe maps=1 env=[" + rt::preload_lib() + "]") << transcript;
}

// Other libraries in LD_PRELOAD stay, in their order, around the removed one.
TEST_P(FollowChildren, FalseKeepsOtherPreloads) {
  const std::string jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
  const std::string tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
  std::string transcript;
  const auto lines = probe_lines(GetParam(), "false", rt::preload_lib() + ":" + jemalloc + " " + tcmalloc, &transcript);
  ASSERT_FALSE(lines.empty()) << transcript;
  for (const std::string& line : lines)
    EXPECT_EQ(line, "probe maps=0 env=[" + jemalloc + ":" + tcmalloc + "]") << transcript;
}

INSTANTIATE_TEST_SUITE_P(Parents, FollowChildren, ::testing::ValuesIn(parents()),
                         [](const auto& info) { return std::string(info.param.name); });

// A program that frees the environment `environ` points to, from its first instant, as bash does
// (tests/hostile/programs/env_churn.c): once main() runs, nothing the library does may read the
// environment. Starting the socket from the control thread did (the socket's directory from
// getenv("XDG_RUNTIME_DIR")), and so does loading mimalloc there directly (it reads its options
// from `environ` when it is loaded): both read freed memory and crashed such programs (bash under
// pyenv's python3 shim, 1 run in 40; this program at its first run). The control thread loads
// mimalloc through librsrmem-heap.so, which gives it an empty environment of its own.
TEST(Environment, RewrittenByTheProgramWhileMonitoringStarts) {
  TempDir dir;
  for (int run = 0; run < 30; ++run) {
    Spawn s;
    s.argv = {hostile::program("env_churn"), "120"};
    s.socket_dir = dir.path();
    s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "65536";  // the first samples come early, and many
    const rt::RunResult r = rt::run(s, kTimeoutMs);
    ASSERT_EQ(rt::describe_status(r.status), "exit 0") << "run " << run << "\n" << r.err;
  }
}

}  // namespace
