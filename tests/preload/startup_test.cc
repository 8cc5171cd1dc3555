// What starting a process, and a thread, under the preload costs in page faults (deterministic
// where time is not): programs started and waited for, plain and under LD_PRELOAD=librsrmem.so,
// their minor faults read from wait4's rusage.
//  - /bin/true: loading the library and its dependencies costs a few hundred faults; the
//    library's own start-up must not add faults that grow with its tables (a scan of the whole
//    call-site table faulted in every page of it: ~1,050 extra faults, now ~300).
//  - 200 short-lived threads sampled once or twice each: unw_backtrace's per-thread trace cache
//    cost ~60 faults (and an mmap and munmap) per thread; sampled stacks are now stepped.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
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

TEST(Startup, AProcessThatStartsAndExitsCostsFewPageFaults) {
  rt::TempDir dir("rsrstart");
  const std::vector<std::string> preload = {"LD_PRELOAD=" + rt::preload_lib(), "RSR_SOCKET_DIR=" + dir.path()};
  long plain = 1L << 30, monitored = 1L << 30;
  for (int i = 0; i < 5; ++i) {  // the least of five: page-cache readahead varies a little
    const long p = faults_of({}), m = faults_of(preload);
    ASSERT_GT(p, 0);
    ASSERT_GT(m, 0);
    plain = std::min(plain, p);
    monitored = std::min(monitored, m);
  }
  std::printf("[ startup  ] /bin/true: %ld minor faults plain, %ld under the preload (+%ld)\n", plain, monitored,
              monitored - plain);
  EXPECT_LT(monitored - plain, 600);
}

TEST(Startup, AShortLivedThreadCostsFewPageFaults) {
  rt::TempDir dir("rsrstart");
  const std::vector<std::string> preload = {"LD_PRELOAD=" + rt::preload_lib(), "RSR_SOCKET_DIR=" + dir.path()};
  const std::string program = rt::program("thread_waves");
  long plain = 1L << 30, monitored = 1L << 30;
  for (int i = 0; i < 3; ++i) {
    const long p = faults_of({}, program), m = faults_of(preload, program);
    ASSERT_GT(p, 0);
    ASSERT_GT(m, 0);
    plain = std::min(plain, p);
    monitored = std::min(monitored, m);
  }
  const double per_thread = static_cast<double>(monitored - plain - 600) / 200;  // start-up's share aside
  std::printf("[ startup  ] 200 short-lived threads: %ld minor faults plain, %ld under the preload (%.1f per thread)\n",
              plain, monitored, per_thread);
  EXPECT_LT(per_thread, 20);
}

}  // namespace
