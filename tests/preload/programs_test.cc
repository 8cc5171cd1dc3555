// Test programs run with and without the preload: same transcript, same exit status.
// Also: symbol resolution (C and C++), dlopen/dlclose loops, threads, signal handlers.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace {

using rt::Process;
using rt::RunResult;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 60000;

struct Mode {
  const char* name;
  std::map<std::string, std::string> env;
};

const Mode kModes[] = {
    {"sampled", {}},
    {"detailed", {{"RSR_MEMORY_DETAILED_TRACKING", "true"}}},
    // Many samples but not every allocation: exercises sampled and unsampled frees side by side.
    {"interval64", {{"RSR_SAMPLE_INTERVAL_BYTES", "64"}}},
    {"disabled", {{"RSR_MEMORY_MONITORING_ENABLED", "false"}}},
};

struct ProgramCase {
  const char* name;
  std::vector<std::string> args;  // "@payload" stands for the payload library's path
  const char* must_print;         // proves the program ran to its end
};

const ProgramCase kPrograms[] = {
    {"api_c", {}, "done failures=0"},
    {"api_cpp", {}, "done failures=0"},
    {"threads", {}, "ok all blocks consumed"},
    {"dlopen_main", {"@payload", "200"}, "kept-block intact"},
};

void PrintTo(const Mode& m, std::ostream* os) { *os << m.name; }
void PrintTo(const ProgramCase& p, std::ostream* os) { *os << p.name; }

std::vector<std::string> argv_of(const ProgramCase& p) {
  std::vector<std::string> argv{rt::program(p.name)};
  for (const auto& a : p.args) argv.push_back(a == "@payload" ? rt::program("libpayload.so") : a);
  return argv;
}

std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ga = static_cast<bool>(std::getline(sa, la));
    const bool gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "no difference";
    if (!ga || !gb || la != lb)
      return "first difference at line " + std::to_string(line) + ":\n  without preload: " + (ga ? la : "<end>") +
             "\n  with preload:    " + (gb ? lb : "<end>");
  }
}

// The run without the preload, once per program.
const RunResult& baseline(const ProgramCase& p) {
  static std::map<std::string, RunResult> cache;
  auto it = cache.find(p.name);
  if (it == cache.end()) {
    Spawn s;
    s.argv = argv_of(p);
    s.preload = false;
    it = cache.emplace(p.name, rt::run(s, kTimeoutMs)).first;
  }
  return it->second;
}

class SameBehaviour : public ::testing::TestWithParam<std::tuple<ProgramCase, Mode>> {};

TEST_P(SameBehaviour, AsWithoutThePreload) {
  const auto& [prog, mode] = GetParam();
  const RunResult& base = baseline(prog);
  ASSERT_TRUE(base.started);
  ASSERT_FALSE(base.timed_out) << base.describe();
  ASSERT_EQ(rt::describe_status(base.status), "exit 0") << "the program fails even without the preload:\n"
                                                        << base.describe();
  ASSERT_NE(base.out.find(prog.must_print), std::string::npos) << base.describe();

  TempDir sockets;
  Spawn s;
  s.argv = argv_of(prog);
  s.socket_dir = sockets.path();
  s.env = mode.env;
  const RunResult r = rt::run(s, kTimeoutMs);
  ASSERT_TRUE(r.started);
  ASSERT_FALSE(r.timed_out) << prog.name << " hung under the preload (" << mode.name << ")\n" << r.describe();
  EXPECT_EQ(rt::describe_status(r.status), rt::describe_status(base.status)) << r.describe();
  EXPECT_TRUE(r.out == base.out) << "stdout differs; " << first_difference(base.out, r.out);
  EXPECT_TRUE(r.err == base.err) << "stderr differs (the library must stay silent):\n" << r.err.substr(0, 2000);
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<ProgramCase, Mode>>& info) {
  return std::string(std::get<0>(info.param).name) + "_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(Programs, SameBehaviour,
                         ::testing::Combine(::testing::ValuesIn(kPrograms), ::testing::ValuesIn(kModes)), case_name);

// ---------------------------------------------------------------------------------------------
// Symbols: every allocation symbol resolves to the preload; libmimalloc captured nothing; the
// preload forwards to glibc.

std::string failures_of(const std::string& transcript) {
  std::istringstream in(transcript);
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind("FAIL", 0) == 0) out += line + "\n";
  return out;
}

class Symbols : public ::testing::TestWithParam<const char*> {};

TEST_P(Symbols, ResolveToThePreloadAndForwardToGlibc) {
  TempDir sockets;
  Spawn s;
  s.argv = {rt::program(GetParam()), rt::program("libpayload.so")};
  s.socket_dir = sockets.path();
  // A small block may come back from the thread's tcache, which glibc's statistics already count
  // as in use: without it, "glibc's arena accounts for the block" holds for every size.
  s.env["GLIBC_TUNABLES"] = "glibc.malloc.tcache_count=0";
  const RunResult r = rt::run(s, kTimeoutMs);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(rt::describe_status(r.status), "exit 0") << failures_of(r.out) << "\n" << r.err;
  EXPECT_NE(r.out.find("ok _Znwm resolves to librsrmem"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("done failures=0"), std::string::npos) << r.describe();
}

TEST_P(Symbols, TheCheckFailsWithoutThePreload) {
  // The same program without the preload must notice that nothing resolves to librsrmem:
  // otherwise the test above proves nothing.
  Spawn s;
  s.argv = {rt::program(GetParam()), rt::program("libpayload.so")};
  s.preload = false;
  const RunResult r = rt::run(s, kTimeoutMs);
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(rt::describe_status(r.status), "exit 1") << r.describe();
  EXPECT_NE(r.out.find("FAIL malloc resolves to librsrmem"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok block from glibc's heap"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(CAndCpp, Symbols, ::testing::Values("symbols_c", "symbols_cpp"),
                         [](const auto& info) { return std::string(info.param); });

// ---------------------------------------------------------------------------------------------
// Signal handlers that allocate while the interrupted thread is inside malloc.

class SignalHandler : public ::testing::TestWithParam<Mode> {};

TEST_P(SignalHandler, AllocatingHandlerNeitherDeadlocksNorCrashes) {
  Spawn base;
  base.argv = {rt::program("signals")};
  base.preload = false;
  static const RunResult b = rt::run(base, 30000);
  ASSERT_EQ(rt::describe_status(b.status), "exit 0") << "the program fails even without the preload:\n"
                                                     << b.describe();

  TempDir sockets;
  Spawn s = base;
  s.preload = true;
  s.socket_dir = sockets.path();
  s.env = GetParam().env;
  const RunResult r = rt::run(s, 30000);
  ASSERT_FALSE(r.timed_out) << "deadlock under the preload (" << GetParam().name << ")\n" << r.describe();
  EXPECT_EQ(rt::describe_status(r.status), "exit 0") << r.describe();
  EXPECT_TRUE(r.out == b.out) << "stdout differs: " << first_difference(b.out, r.out);
}

INSTANTIATE_TEST_SUITE_P(Modes, SignalHandler, ::testing::Values(kModes[0], kModes[1], kModes[2]),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
