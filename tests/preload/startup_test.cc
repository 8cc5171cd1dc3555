// What starting a process, and a thread, under the preload costs in page faults (deterministic
// where time is not): programs started and waited for, plain and under LD_PRELOAD=librsrmem.so,
// their minor faults read from wait4's rusage.
//  - /bin/true: the library loads no other shared object before it needs one but its private
//    heap (it loaded libstdc++, libm, libgcc_s, libunwind and liblzma too: ~220 extra faults,
//    then ~75, ~50, now ~33 with no thread and the start-up's writes on few pages), and
//    its start-up does not add faults that grow with its tables (a scan of the whole call-site
//    table faulted in every page of it: ~1,050 extra faults).
//  - 200 short-lived threads sampled once or twice each: unw_backtrace's per-thread trace cache
//    cost ~60 faults (and an mmap and munmap) per thread, libunwind's stepping still ~2; the
//    library's own walker keeps no per-thread state.
//  - The same threads' samples, in system calls (strace): libunwind blocked signals around each
//    lookup of a frame its per-thread cache had not seen and checked memory with a pipe, about
//    twenty calls per sample in a new thread; the library's own walker makes none.
//  - A malloc(32)+free pair, in instructions (callgrind): the hooks added 69 (143 -> 212); the
//    bootstrap range test moved into the sampled-block filter, single-instruction counter
//    updates and fast paths that end in tail calls brought that to about 50; mmapped chunks sent
//    to the slow path to 46; one countdown for the sampler and the peak's fold, malloc's gate
//    tested once (before its call), a two-instruction filter hash and free(NULL) sent off the
//    fast path by the filter to 35; byte counters that count glibc's chunk sizes (the usable
//    size plus a word, taken back off by their readers) to 33; the filter's byte compared in
//    memory to 32.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace {

// Minor faults of one run of `program` with `env` added to the environment; -1 on failure.
long faults_of(const std::vector<std::string>& env, const std::string& program = "/bin/true") {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    execl(program.c_str(), program.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return ru.ru_minflt;
}

// The least of `runs` measurements of each of two variants, taken in turns; {-1, -1} when one
// failed.
std::pair<long, long> least_of(int runs, const std::function<long()>& a, const std::function<long()>& b) {
  long least_a = 1L << 30, least_b = 1L << 30;
  for (int i = 0; i < runs; ++i) {
    const long x = a(), y = b();
    if (x <= 0 || y <= 0) return {-1, -1};
    least_a = std::min(least_a, x);
    least_b = std::min(least_b, y);
  }
  return {least_a, least_b};
}

TEST(Startup, AProcessThatStartsAndExitsCostsFewPageFaults) {
  rt::TempDir dir("rsrstart");
  const std::vector<std::string> preload = {"LD_PRELOAD=" + rt::preload_lib(), "RSR_SOCKET_DIR=" + dir.path()};
  // The least of five: page-cache readahead varies a little.
  const auto [plain, monitored] = least_of(5, [] { return faults_of({}); }, [&] { return faults_of(preload); });
  ASSERT_GT(plain, 0);
  std::printf("[ startup  ] /bin/true: %ld minor faults plain, %ld under the preload (+%ld)\n", plain, monitored,
              monitored - plain);
  // ~50 with a control thread made at start-up and the start-up's small variables spread over the
  // library's data between its large tables; ~33 without the thread, with the tables after the
  // rest (.lbss) and the settings' paths after the other settings.
  EXPECT_LT(monitored - plain, 40);
}

// The shared objects a process loads, from the dynamic loader's own account (LD_DEBUG=files):
// the program's, plus librsrmem.so, and nothing else for a process that ends within the start-up's
// quiet period and takes no sample (the sampling interval is set out of reach): no private heap
// (mimalloc comes with the control thread's half of the start-up), no libstdc++, libm or
// libgcc_s, no libunwind or liblzma.
std::vector<std::string> objects_loaded(bool preload, const std::string& dir) {
  rt::Spawn s;
  s.argv = {"/bin/true"};
  s.preload = preload;
  s.socket_dir = dir;
  s.env["LD_DEBUG"] = "files";
  s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "1099511627776";
  const rt::RunResult r = rt::run(s, 10000);
  EXPECT_EQ(rt::describe_status(r.status), "exit 0");
  std::vector<std::string> files;
  for (size_t at = r.err.find("file="); at != std::string::npos; at = r.err.find("file=", at + 1)) {
    const size_t end = r.err.find_first_of(" \t[", at);
    std::string name = r.err.substr(at + 5, end - at - 5);
    if (const size_t slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
    if (std::find(files.begin(), files.end(), name) == files.end()) files.push_back(name);
  }
  return files;
}

TEST(Startup, AShortProcessLoadsNoOtherObjectThanTheLibrary) {
  rt::TempDir dir("rsrstart");
  std::vector<std::string> plain = objects_loaded(false, dir.path());
  const std::vector<std::string> monitored = objects_loaded(true, dir.path());
  ASSERT_FALSE(plain.empty());
  plain.push_back("librsrmem.so");
  std::string extra;
  for (const std::string& f : monitored)
    if (std::find(plain.begin(), plain.end(), f) == plain.end()) extra += f + " ";
  EXPECT_EQ(extra, "") << "loaded by the preload before it needed them";
}

// A process that outlives the quiet period gets the private heap from the control thread, which
// must not read the environment (the program may be freeing it): mimalloc is loaded with an empty
// one of its own, so the MIMALLOC_* settings meant for the service's allocator (here: print every
// option and the statistics at exit) do not reach it.
TEST(Startup, ThePrivateHeapReadsNoneOfTheProgramsEnvironment) {
  rt::TempDir dir("rsrstart");
  rt::Spawn s;
  s.argv = {"/bin/sleep", "0.3"};
  s.socket_dir = dir.path();
  s.env["LD_DEBUG"] = "files";
  s.env["MIMALLOC_VERBOSE"] = "1";
  s.env["MIMALLOC_SHOW_STATS"] = "1";
  const rt::RunResult r = rt::run(s, 10000);
  EXPECT_EQ(rt::describe_status(r.status), "exit 0");
  EXPECT_NE(r.err.find("libmimalloc.so.2"), std::string::npos) << "the private heap was not loaded:\n" << r.err.substr(0, 3000);
  EXPECT_EQ(r.err.find("mimalloc:"), std::string::npos) << "mimalloc read MIMALLOC_*:\n" << r.err.substr(0, 3000);
}

// The heap comes through librsrmem-heap.so beside the library, else wherever the loader's search
// finds one (a copy of the library run from elsewhere); with none, monitoring turns off with one
// line that names it, and the program runs on.
TEST(Startup, ACopyOfTheLibraryFindsItsHeapLoaderOrSaysItIsMissing) {
  rt::TempDir dir("rsrstart");
  rt::TempDir bin("rsrlib");
  rt::write_file(bin / "librsrmem.so", rt::read_file(rt::preload_lib()), 0755);
  const std::string heap = rt::preload_heap_lib();
  for (const bool searched : {true, false}) {
    rt::Spawn s;
    s.argv = {"/bin/sleep", "0.3"};
    s.preload_path = bin / "librsrmem.so";
    s.socket_dir = dir.path();
    s.env["LD_DEBUG"] = "files";
    s.env["LD_LIBRARY_PATH"] = searched ? heap.substr(0, heap.rfind('/')) : "";
    const rt::RunResult r = rt::run(s, 10000);
    EXPECT_EQ(rt::describe_status(r.status), "exit 0") << r.err.substr(0, 3000);
    if (searched) {
      EXPECT_NE(r.err.find("libmimalloc.so.2"), std::string::npos) << r.err.substr(0, 3000);
      EXPECT_EQ(r.err.find("could not be loaded"), std::string::npos) << r.err.substr(0, 3000);
    } else {
      EXPECT_NE(r.err.find("librsrmem-heap.so: cannot open"), std::string::npos) << r.err.substr(0, 3000);
      EXPECT_NE(r.err.find("monitoring is off"), std::string::npos) << r.err.substr(0, 3000);
    }
  }
}

TEST(Startup, AShortLivedThreadCostsFewPageFaults) {
  rt::TempDir dir("rsrstart");
  const std::vector<std::string> preload = {"LD_PRELOAD=" + rt::preload_lib(), "RSR_SOCKET_DIR=" + dir.path()};
  const std::string program = rt::program("thread_waves");
  const auto [plain, monitored] =
      least_of(3, [&] { return faults_of({}, program); }, [&] { return faults_of(preload, program); });
  ASSERT_GT(plain, 0);
  const double per_thread = static_cast<double>(monitored - plain - 250) / 200;  // start-up's share aside
  std::printf("[ startup  ] 200 short-lived threads: %ld minor faults plain, %ld under the preload (%.1f per thread)\n",
              plain, monitored, per_thread);
  EXPECT_LT(per_thread, 1.0);
}

constexpr int kLineMs = 15000;
constexpr int kSocketMs = 10000;

// Threads a run of `argv` under the preload makes (clone and clone3 calls, strace -f); -1 on
// failure.
long threads_made(const std::string& argv, const std::string& dir) {
  const std::string out = rt::run_text("LD_PRELOAD=" + rt::preload_lib() + " RSR_SOCKET_DIR=" + dir +
                                       " strace -f -q -e trace=clone,clone3 -o /dev/stdout " + argv + " 2>&1");
  if (out.find("+++ exited with 0 +++") == std::string::npos) return -1;
  long n = 0;
  for (size_t at = out.find("clone"); at != std::string::npos; at = out.find("clone", at + 1)) ++n;
  return n;
}

// The control thread is started lazily (preload/hot/launch.h): a process that starts and exits
// makes none (it made one, and paid for its creation and tear-down, ~0.05 ms a process).
TEST(Startup, AProcessThatStartsAndExitsMakesNoThread) {
  rt::TempDir dir("rsrstart");
  EXPECT_EQ(threads_made("/bin/true", dir.path()), 0);
  EXPECT_EQ(threads_made(rt::program("pair_loop") + " 1000", dir.path()), 0);
}

// The idle program (it allocates once, then waits on stdin) under the preload, once its socket is
// made; `ok` is false, with the failure reported, when it did not come up.
rt::Process idle_with_socket(const rt::TempDir& dir, bool* ok) {
  rt::Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  rt::Process p(s);
  rt::Reply hello;
  *ok = p.read_line(kLineMs).has_value() && rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello);
  EXPECT_TRUE(*ok) << p.describe() << hello.describe();
  return p;
}

// ... and a process that lives on gets it, and its socket, whether it waits from the start and
// never allocates again (idle: read from stdin) or allocates without ever waiting (pair_loop).
TEST(Startup, AProcessThatWaitsFromTheStartGetsItsSocket) {
  rt::TempDir dir("rsrstart");
  bool ok = false;
  rt::Process p = idle_with_socket(dir, &ok);
  p.close_stdin();
  EXPECT_TRUE(p.wait(kLineMs));
}

// A shell waiting for its command (dash waits with wait3) allocates next to nothing.
TEST(Startup, AShellWaitingForItsCommandGetsItsSocket) {
  rt::TempDir dir("rsrstart");
  rt::Spawn s;
  s.argv = {"/bin/sh", "-c", "sleep 30; :"};
  s.socket_dir = dir.path();
  rt::Process p(s);
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
}

TEST(Startup, AProcessThatAllocatesWithoutWaitingGetsItsSocket) {
  rt::TempDir dir("rsrstart");
  rt::Spawn s;
  s.argv = {rt::program("pair_loop"), "100000000000"};
  s.socket_dir = dir.path();
  rt::Process p(s);
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
}

// The process's descriptor table (FDSize in /proc/PID/status), which every fork copies: the
// library's descriptors stay below 1024 even where the limit allows far more (at 4032 they made
// a 4096-entry table, and each fork+exit 10-20 us slower).
TEST(Startup, TheLibrarysDescriptorsKeepTheDescriptorTableSmall) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 8192) GTEST_SKIP() << "needs a descriptor limit of 8192";
  rl.rlim_cur = 8192;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  rt::TempDir dir("rsrstart");
  bool ok = false;
  rt::Process p = idle_with_socket(dir, &ok);
  ASSERT_TRUE(ok);
  const std::string status = rt::read_file("/proc/" + std::to_string(p.pid()) + "/status");
  const size_t at = status.find("FDSize:");
  ASSERT_NE(at, std::string::npos) << status;
  EXPECT_LE(std::atol(status.c_str() + at + 7), 1024) << status.substr(at, 40);
  p.close_stdin();
  EXPECT_TRUE(p.wait(kLineMs));
}

// System calls strace counts in a run of thread_waves under the preload (all threads); -1 on
// failure. `sampled`: at the default sampling interval, else at one no program reaches.
long syscalls_of(bool sampled, const std::string& dir) {
  std::string cmd = "LD_PRELOAD=" + rt::preload_lib() + " RSR_SOCKET_DIR=" + dir + " ";
  if (!sampled) cmd += "RSR_SAMPLE_INTERVAL_BYTES=1099511627776 ";
  cmd += "strace -f -c -o /dev/stdout " + rt::program("thread_waves") + " 2>&1";
  const std::string out = rt::run_text(cmd);
  const size_t at = out.rfind(" total");
  if (at == std::string::npos) return -1;
  const size_t line = out.rfind('\n', at);
  long seconds_pct = 0, calls = -1;
  double sec = 0;
  long usecs = 0;
  if (std::sscanf(out.c_str() + (line == std::string::npos ? 0 : line + 1), "%ld.%*d %lf %ld %ld", &seconds_pct, &sec,
                  &usecs, &calls) != 4)
    return -1;
  return calls;
}

TEST(Startup, SamplesInNewThreadsMakeNoSystemCalls) {
  rt::TempDir dir("rsrstart");
  const auto [quiet, sampled] =
      least_of(2, [&] { return syscalls_of(false, dir.path()); }, [&] { return syscalls_of(true, dir.path()); });
  ASSERT_GT(quiet, 0) << "strace must be installed: scripts/bootstrap";
  // 200 threads allocate about a MiB each: some 400 samples at the default interval, which cost
  // ~6,500 calls with libunwind. Whether the run outlives the start-up's quiet period (the
  // control thread then loads libunwind and binds the socket: ~150 calls) is left to timing.
  std::printf("[ startup  ] 200 short-lived threads: %ld system calls unsampled, %ld sampled (%+ld)\n", quiet, sampled,
              sampled - quiet);
  EXPECT_LT(sampled - quiet, 400) << "about one system call per sample at most";
}

// The instruction count callgrind reports in `output`; -1 without one.
long long collected(const std::string& output) {
  const size_t at = output.rfind("Collected : ");
  return at == std::string::npos ? -1 : std::atoll(output.c_str() + at + 12);
}

// Instructions callgrind counts in pair_loop's main (the program's thread only: the library's
// own threads wake on timers, and a run that outlasts one more wake-up would count it) for a run
// with `pairs` pairs; -1 on failure.
long long instructions(bool preload, long pairs, const std::string& dir) {
  std::string cmd = "valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no --toggle-collect=main ";
  cmd = (preload ? "LD_PRELOAD=" + rt::preload_lib() + " RSR_SOCKET_DIR=" + dir + " " : std::string()) + cmd;
  cmd += rt::program("pair_loop") + " " + std::to_string(pairs) + " 2>&1";
  return collected(rt::run_text(cmd));
}

// Instructions per malloc(32)+free pair, plain and in the runs `measured` counts (a whole run of
// so many pairs): the difference of two run lengths takes start-up and exit out of each.
struct PairCost {
  double plain = -1, measured = -1;
  bool ok() const { return plain > 0 && measured > 0; }
  double added() const { return measured - plain; }
};

PairCost pair_cost(long small, long large, const std::string& dir, const std::function<long long(long)>& measured) {
  const long long plain_small = instructions(false, small, dir), plain_large = instructions(false, large, dir);
  const long long small_count = measured(small), large_count = measured(large);
  PairCost c;
  if (plain_small <= 0 || plain_large <= 0 || small_count <= 0 || large_count <= 0) return c;
  c.plain = static_cast<double>(plain_large - plain_small) / static_cast<double>(large - small);
  c.measured = static_cast<double>(large_count - small_count) / static_cast<double>(large - small);
  return c;
}

constexpr const char* kCallgrindMissing = "valgrind (callgrind) must be installed (scripts/bootstrap), and every run succeed";

TEST(Hooks, AMallocFreePairCostsFewInstructions) {
  rt::TempDir dir("rsrstart");
  const PairCost c = pair_cost(200000, 400000, dir.path(), [&](long n) { return instructions(true, n, dir.path()); });
  ASSERT_TRUE(c.ok()) << kCallgrindMissing;
  std::printf("[ hooks    ] malloc(32)+free: %.1f instructions plain, %.1f under the preload (+%.1f)\n", c.plain,
              c.measured, c.added());
  EXPECT_LT(c.added(), 33.0);
}

// A captured pair, counted on the program's thread only (inside main): the capture's writer
// thread runs beside it. The pair's capture cost the thread ~655 instructions; checking the stack's memo before taking
// the guard and copying frames, and keeping errno only where system calls may be made: ~445;
// the walk a function of its own (its frame set up only when it walks): ~435; a state of the
// fast byte for captures, whose slow path skips what that state already says: ~400.
constexpr double kCapturedPairBar = 420;

// Instructions of the program's thread in a run of pair_loop with `pairs` pairs under a profiling
// capture, started over the control socket once pair_loop waits before its loop; -1 on failure.
// With `after` >= 0, the capture is stopped once the pairs are made, and `after` pairs more are
// made without it.
long long capture_instructions(long pairs, const std::string& dir, long after = -1) {
  rt::Spawn s;
  s.argv = {"valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "--collect-atstart=no",
            "--toggle-collect=main", rt::program("pair_loop"), std::to_string(pairs), "wait"};
  if (after >= 0) s.argv.push_back(std::to_string(after));
  s.socket_dir = dir;
  s.env["RSR_PROFILING_ENABLED"] = "true";
  s.env["RSR_PROFILING_OUTPUT_DIR"] = dir + "/captures";
  // No samples after the capture: a sample's end (the guard's) would put the thread's gate right
  // by itself.
  if (after >= 0) s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "1099511627776";
  rt::Process p(s);
  if (!p.read_until([](const std::string& l) { return l == "READY"; }, 120000)) return -1;
  if (!rt::wait_for_socket(dir, p.pid(), 120000)) return -1;  // valgrind runs the program in its own process
  const std::string socket = rt::socket_path(dir, p.pid());
  const rt::Reply r = rt::query(socket, R"({"cmd":"start_profiling","duration_s":3600})", 60000);
  if (!r.served() || !p.write("go\n")) return -1;
  if (after >= 0) {
    if (!p.read_until([](const std::string& l) { return l == "DONE"; }, 300000)) return -1;
    const std::string id = r.json.value("id", "");
    const std::string stop = R"({"cmd":"stop_profiling","id":")" + id + R"("})";
    if (id.empty() || !rt::query(socket, stop, 120000).served() || !p.write("go\n")) return -1;
  }
  const std::optional<int> status = p.wait(300000);
  return status && *status == 0 ? collected(p.err()) : -1;
}

TEST(Hooks, ACapturedMallocFreePairCostsFewInstructions) {
  rt::TempDir dir("rsrstart");
  const PairCost c = pair_cost(100000, 200000, dir.path(), [&](long n) { return capture_instructions(n, dir.path()); });
  ASSERT_TRUE(c.ok()) << kCallgrindMissing;
  std::printf("[ hooks    ] malloc(32)+free under a capture: %.1f instructions plain, %.1f captured (+%.1f)\n",
              c.plain, c.measured, c.added());
  EXPECT_LT(c.added(), kCapturedPairBar);
}

// Pairs made after a capture that the thread recorded in: its gate goes back to the fast path.
TEST(Hooks, AfterACaptureThePairIsFastAgain) {
  rt::TempDir dir("rsrstart");
  const PairCost c =
      pair_cost(100000, 200000, dir.path(), [&](long n) { return capture_instructions(50000, dir.path(), n); });
  ASSERT_TRUE(c.ok()) << kCallgrindMissing;
  std::printf("[ hooks    ] malloc(32)+free after a capture: %.1f instructions plain, %.1f (+%.1f)\n", c.plain,
              c.measured, c.added());
  EXPECT_LT(c.added(), 40.0);
}

}  // namespace
