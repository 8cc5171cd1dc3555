// Runs the real rsrmemctl as an operator would, under bounds a hostile input must not break: a
// wall-clock deadline (then the whole process group is killed), an address-space limit
// (RLIMIT_AS), and a report of what it cost (wall time, peak resident memory from wait4's
// rusage). stdin is /dev/null; stdout and stderr are collected.
//
// ru_maxrss also counts what the child was forked from (the kernel keeps the larger of the
// image before exec and after), so tests keep this process small when they run rsrmemctl.
//
// $RSRMEMCTL names the binary (tests/hostile/meson.build sets it).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "subprocess.h"

namespace hostile {

struct Limits {
  double deadline_s = 20;                         // generous: CI is a loaded 2-core machine
  rlim_t address_space = rlim_t{1} << 30;         // 1 GiB
};

struct Outcome {
  int code = -1;          // exit status; 128+N when killed by signal N
  bool killed = false;    // still running at the deadline (so it was killed)
  double seconds = 0;     // wall time until it exited or was killed
  long max_rss_kb = 0;    // peak resident set (ru_maxrss)
  std::string out, err;

  std::string describe() const {
    char head[160];
    std::snprintf(head, sizeof head, "%s after %.2f s, peak RSS %.1f MB",
                  killed ? "killed at the deadline" : ("exit " + std::to_string(code)).c_str(),
                  seconds, static_cast<double>(max_rss_kb) / 1024);
    std::string err_head = err.substr(0, 600);
    return std::string(head) + "; stderr: " + err_head;
  }
};

inline std::string ctl_binary() {
  const char* p = std::getenv("RSRMEMCTL");
  return p && *p ? p : "";
}

inline double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Runs `args` (args[0] is the program) in a process group of its own.
inline Outcome run(const std::vector<std::string>& args, const Limits& limits = {}) {
  const double start = now_s();
  const rlimit as{limits.address_space, limits.address_space};
  const rsrtest::Child child = rsrtest::spawn(args, {}, [&as] {
    setpgid(0, 0);
    setrlimit(RLIMIT_AS, &as);
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
  });
  const pid_t pid = child.pid;
  setpgid(pid, pid);  // also here: no race with the kill below

  Outcome r;
  pollfd fds[2] = {{child.out, POLLIN, 0}, {child.err, POLLIN, 0}};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    const double left = start + limits.deadline_s - now_s();
    if (left <= 0) {
      r.killed = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left * 1000) + 1) <= 0) continue;
    for (pollfd& p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(p.fd, buf, sizeof buf);
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        --open_fds;
      } else if ((&p == &fds[0] ? r.out : r.err).size() < (4u << 20)) {
        (&p == &fds[0] ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (r.killed) kill(-pid, SIGKILL);
  int status = 0;
  rusage usage{};
  // A child that closed its pipes but lingers past the deadline is killed too.
  while (wait4(pid, &status, r.killed ? 0 : WNOHANG, &usage) == 0) {
    if (now_s() > start + limits.deadline_s) {
      r.killed = true;
      kill(-pid, SIGKILL);
    } else {
      usleep(5000);
    }
  }
  kill(-pid, SIGKILL);  // anything it left behind in its group
  r.seconds = now_s() - start;
  for (const pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

}  // namespace hostile
