// Runs a program with extra environment variables and collects its exit status, stdout and
// stderr, for tests that drive rsrmemctl and the scripts as an operator would.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace rsrtest {

struct Result {
  int code = -1;  // exit status, 128+N when killed by signal N
  std::string out, err;
};

// A started program whose stdout and stderr are pipes; finish() reads them and reaps it.
struct Child {
  pid_t pid = -1;
  int out = -1, err = -1;
};

using EnvOverrides = std::map<std::string, std::string>;

// The environment of this process with `overrides` applied (built before fork: the child only
// calls async-signal-safe functions).
inline std::vector<std::string> environment_with(const EnvOverrides& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    if (!overrides.count(entry.substr(0, entry.find('=')))) env.push_back(entry);
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  return env;
}

// Runs in the child between fork and exec (setpgid, setrlimit, ...): async-signal-safe calls
// only.
using ChildSetup = std::function<void()>;

inline Child spawn(const std::vector<std::string>& args, const EnvOverrides& overrides = {},
                   const ChildSetup& setup = {}) {
  std::vector<std::string> env = environment_with(overrides);
  std::vector<char*> argv, envp;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  int o[2], e[2];
  if (pipe2(o, O_CLOEXEC) != 0 || pipe2(e, O_CLOEXEC) != 0) std::abort();
  const pid_t pid = fork();
  if (pid == 0) {
    if (setup) setup();
    dup2(o[1], 1);
    dup2(e[1], 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(126);
  }
  close(o[1]);
  close(e[1]);
  return {pid, o[0], e[0]};
}

inline Result finish(Child c) {
  Result r;
  pollfd fds[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, 60000) <= 0) break;
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
  for (const pollfd& p : fds)
    if (p.fd >= 0) close(p.fd);
  int status = 0;
  waitpid(c.pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline Result run(const std::vector<std::string>& args, const EnvOverrides& overrides = {}) {
  return finish(spawn(args, overrides));
}

// A file's whole content; "" when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string env_or_die(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    std::fprintf(stderr, "%s is not set (run through meson test)\n", name);
    std::abort();
  }
  return v;
}

}  // namespace rsrtest
