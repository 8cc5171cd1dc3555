// rsrmemctl end to end: the real binary launching and querying real programs under the real
// librsrmem.so. Paths come from the environment (tests/ctl/meson.build): RSRMEMCTL,
// RSR_PRELOAD_LIB, RSR_E2E_TARGET. Every test uses its own socket directory.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

std::string env_or_die(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    std::fprintf(stderr, "%s is not set (run through meson test)\n", name);
    std::abort();
  }
  return v;
}

struct Result {
  int code = -1;
  std::string out, err;
};

// Starts argv with stdout/stderr on pipes; the caller reads and reaps.
struct Child {
  pid_t pid = -1;
  int out = -1, err = -1;
};

Child spawn(const std::vector<std::string>& args) {
  int o[2], e[2];
  if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(126);
  }
  close(o[1]);
  close(e[1]);
  return {pid, o[0], e[0]};
}

Result finish(Child c) {
  Result r;
  pollfd fds[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, 30000) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(c.pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rsrctl-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    setenv("RSR_SOCKET_DIR", dir_.c_str(), 1);
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }

  Result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return finish(spawn(args));
  }

  // Waits for a <pid>.sock to appear; returns the pid (0 on timeout).
  pid_t wait_for_socket() {
    for (int i = 0; i < 200; ++i) {
      const Result r = ctl({"list", "--format", "json"});
      const Json rows = Json::parse(r.out, nullptr, false);
      if (rows.is_array())
        for (const Json& row : rows)
          if (row.value("state", "") == "live") return row["pid"].get<pid_t>();
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return 0;
  }

  std::string ctl_ = env_or_die("RSRMEMCTL");
  std::string target_ = env_or_die("RSR_E2E_TARGET");
  std::string lib_ = env_or_die("RSR_PRELOAD_LIB");
  std::string dir_;
};

TEST_F(E2eTest, RunPassesTheExitStatusThrough) {
  const Result r = ctl({"run", "--", target_, "exit", "7"});
  EXPECT_EQ(r.code, 7);
  EXPECT_THAT(r.err, HasSubstr("rsrmemctl: monitoring pid "));
}

TEST_F(E2eTest, RunWithoutDoubleDash) {
  const Result r = ctl({"run", target_, "exit", "3"});
  EXPECT_EQ(r.code, 3);
}

TEST_F(E2eTest, RunReportsACommandThatCannotStart) {
  const Result r = ctl({"run", "--", "/nonexistent/program", "-x"});
  EXPECT_EQ(r.code, 127);
  EXPECT_THAT(r.err, HasSubstr("cannot run '/nonexistent/program': No such file or directory"));
}

TEST_F(E2eTest, RunPutsThePreloadFirstAndAppliesTheEnvFile) {
  const std::string env_file = dir_ + "/svc.env";
  std::ofstream(env_file)
      << "# settings\nRSR_SERVICE_NAME=e2e-svc\nGREETING=\"hello there\"  # ok\n";
  Result r = ctl({"run", "--env-file", env_file, "--", target_, "env", "GREETING"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hello there\n");
  EXPECT_THAT(r.err, HasSubstr("GREETING is not an rsrmem setting"));
  r = ctl({"run", "--", target_, "env", "LD_PRELOAD"});
  EXPECT_THAT(r.out, HasSubstr("librsrmem.so"));
  EXPECT_EQ(r.out.find('/'), 0u);  // an absolute path, first
}

TEST_F(E2eTest, RunEnvFileErrors) {
  const std::string env_file = dir_ + "/bad.env";
  std::ofstream(env_file) << "RSR_STACK_DEPTH=8\nthis is not a setting\n";
  Result r = ctl({"run", "--env-file", env_file, "--", target_, "exit", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(env_file + ":2: expected '=' after this"));
  r = ctl({"run", "--env-file", dir_ + "/missing.env", "--", target_, "exit", "0"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("cannot read env file " + dir_ + "/missing.env"));
}

TEST_F(E2eTest, UsageErrorsExitTwo) {
  EXPECT_EQ(ctl({"run"}).code, 2);
  EXPECT_EQ(ctl({"list", "--", "x"}).code, 2);
  EXPECT_EQ(ctl({"--pid", "1", "run", "--", target_}).code, 2);
  EXPECT_EQ(ctl({"--pid", "1", "--all", "status"}).code, 2);
  EXPECT_EQ(ctl({"status", "--format", "yaml"}).code, 2);
  EXPECT_EQ(ctl({"frobnicate"}).code, 2);
  EXPECT_EQ(ctl({"memory-summary", "--top", "5000"}).code, 2);
  EXPECT_EQ(ctl({"--help"}).code, 0);
  EXPECT_THAT(ctl({"--help"}).out, HasSubstr("Exit codes:"));
}

TEST_F(E2eTest, MissingTargetExitsThree) {
  const Result r = ctl({"--pid", "2147480000", "status"});
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("no monitored process with pid 2147480000 (no socket " + dir_ +
                               "/2147480000.sock)"));
  EXPECT_EQ(ctl({"health-check"}).code, 3);
}

// The example service's sessions grow through std::vector::resize (-O2): GCC's DWARF nests an
// inlined std::_Vector_base::_M_allocate directly in another. A stack shows that call once.
// Every allocation is sampled (detailed mode): with the default sampling a second and a half of
// the service holds a handful of live samples, and the vector's site may have none.
TEST_F(E2eTest, AnInlinedCallNestedInItselfIsOneFrame) {
  setenv("RSR_MEMORY_DETAILED_TRACKING", "true", 1);
  Child runner = spawn({ctl_, "run", "--", env_or_die("RSR_DEMO_SERVICE"), "--requests-per-second", "2000"});
  unsetenv("RSR_MEMORY_DETAILED_TRACKING");
  const pid_t pid = wait_for_socket();
  ASSERT_GT(pid, 0) << "no monitored process appeared in " << dir_;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const Result r = ctl({"memory-summary", "--format", "json", "--top", "50"});
  kill(runner.pid, SIGTERM);
  finish(runner);
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  int allocate_frames = 0;
  for (const Json& site : summary["top_live"])
    for (const Json& f : site["frames"]) {
      const Json& inlined = f["inlined"];
      for (size_t i = 0; i < inlined.size(); ++i) {
        const std::string name = inlined[i]["function"];
        if (name.find("_M_allocate") != std::string::npos) ++allocate_frames;
        if (i > 0) EXPECT_NE(name, inlined[i - 1]["function"].get<std::string>()) << f.dump();
      }
    }
  EXPECT_GT(allocate_frames, 0) << "no std::vector allocation among the sites: " << summary.dump(1).substr(0, 3000);
}

TEST_F(E2eTest, QueriesALiveProcessAndForwardsSigterm) {
  setenv("RSR_MEMORY_DETAILED_TRACKING", "true", 1);
  Child runner = spawn({ctl_, "run", "--", target_, "wait"});
  unsetenv("RSR_MEMORY_DETAILED_TRACKING");
  const pid_t pid = wait_for_socket();
  ASSERT_GT(pid, 0) << "no monitored process appeared in " << dir_;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it allocate

  Result r = ctl({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(std::to_string(pid)));
  EXPECT_THAT(r.out, HasSubstr("ctl-e2e-target wait"));

  r = ctl({"health-check"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Health check complete. Status: healthy\n\nComponent status:\n"));

  r = ctl({"--pid", std::to_string(pid), "status", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["config"]["RSR_MEMORY_DETAILED_TRACKING"], "true");

  r = ctl({"memory-summary", "--format", "json", "--top", "5"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  bool found = false;
  for (const Json& site : summary["top_live"])
    for (const Json& f : site["frames"])
      if (f["function"].get<std::string>().find("leak_some_memory") != std::string::npos) {
        found = true;
        EXPECT_THAT(f["file"].get<std::string>(), HasSubstr("e2e_target.cc"));
        EXPECT_GT(f["line"].get<int>(), 0);
      }
  EXPECT_TRUE(found) << summary["top_live"].dump(2);

  r = ctl({"memory-summary"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("leak_some_memory"));
  EXPECT_THAT(r.out, HasSubstr("e2e_target.cc:"));

  r = ctl({"--all", "update-metrics"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Metrics updated for " + std::to_string(pid)));

  // SIGTERM to rsrmemctl reaches the service, and rsrmemctl exits as it did.
  kill(runner.pid, SIGTERM);
  const Result ran = finish(runner);
  EXPECT_EQ(ran.code, 128 + SIGTERM) << ran.err;
  EXPECT_THAT(ran.err, HasSubstr("rsrmemctl: monitoring pid " + std::to_string(pid)));

  // Killed by a signal, it may have left its socket: list cleans it up.
  r = ctl({"list"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, Not(HasSubstr("ctl-e2e-target wait")));
  EXPECT_EQ(access((dir_ + "/" + std::to_string(pid) + ".sock").c_str(), F_OK), -1);
}

}  // namespace
