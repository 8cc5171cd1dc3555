// What starting a process under the preload costs in page faults (deterministic where time is
// not): /bin/true started and waited for, plain and under LD_PRELOAD=librsrmem.so, its minor
// faults read from wait4's rusage. Loading the library and its dependencies costs a few hundred
// faults; the library's own start-up must not add faults that grow with its tables (a scan of
// the whole call-site table faulted in every page of it: ~1,050 extra faults, now ~300).
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

// Minor faults of one run of /bin/true with `env` added to the environment; -1 on failure.
long faults_of(const std::vector<std::string>& env) {
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    execl("/bin/true", "true", static_cast<char*>(nullptr));
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

}  // namespace
