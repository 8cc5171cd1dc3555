#include "run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

#include "env_file.h"
#include "errors.h"
#include "format.h"
#include "metrics_push.h"
#include "pyroscope_push.h"

#ifndef RSR_LIBDIR
#define RSR_LIBDIR "lib"
#endif

namespace rsr::ctl {
namespace {

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

volatile sig_atomic_t g_child = 0;

// The terminal signals the whole foreground process group, the child included (the kernel marks
// those SI_KERNEL); forwarding them too would deliver them twice, and a second SIGINT often means
// "stop now" to a service. Signals sent to rsrmemctl alone (kill, systemd) are forwarded.
void forward_signal(int sig, siginfo_t* info, void*) {
  const pid_t child = g_child;
  if (child <= 0) return;
  if (info && info->si_code == SI_KERNEL && getpgid(child) == getpgrp()) return;
  const int saved = errno;
  kill(child, sig);
  errno = saved;
}

bool readable_file(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), R_OK) == 0;
}

std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf)) return buf;
  return path;
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::string find_preload_library(const EnvLookup& env, const std::string& exe_path) {
  if (const char* configured = env("RSR_PRELOAD_LIB"); configured && *configured) {
    if (!readable_file(configured))
      throw CtlError(kExitNotFound,
                     std::string("RSR_PRELOAD_LIB=") + configured + ": no readable file there");
    return absolute(configured);
  }
  const size_t slash = exe_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : exe_path.substr(0, slash);
  std::vector<std::string> tried;
  // The build tree's layout, then the installed one: a private directory under libdir, where
  // ld.so's search path does not reach (the library is preloaded by path, never linked).
  for (const std::string rel :
       {"../preload/librsrmem.so", "../" RSR_LIBDIR "/rsrmem/librsrmem.so",
        "../lib/x86_64-linux-gnu/rsrmem/librsrmem.so", "../lib/rsrmem/librsrmem.so"}) {
    const std::string candidate = dir + "/" + rel;
    bool seen = false;
    for (const std::string& t : tried) seen = seen || t == candidate;
    if (seen) continue;
    if (readable_file(candidate)) return absolute(candidate);
    tried.push_back(candidate);
  }
  std::string msg = "cannot find librsrmem.so; looked in:";
  for (const std::string& t : tried) msg += "\n  " + t;
  msg += "\nset RSR_PRELOAD_LIB to its path";
  throw CtlError(kExitNotFound, msg);
}

std::string prepend_ld_preload(const std::string& lib, const char* current) {
  std::string out = lib;
  if (!current) return out;
  // ld.so separates LD_PRELOAD entries with colons or blanks.
  std::string entry;
  auto flush = [&] {
    if (!entry.empty() && entry != lib) out += ":" + entry;
    entry.clear();
  };
  for (const char* p = current; *p; ++p) {
    if (*p == ':' || *p == ' ' || *p == '\t')
      flush();
    else
      entry += *p;
  }
  flush();
  return out;
}

double default_push_interval_s(const EnvLookup& env) {
  constexpr double kDefault = 10;
  const char* configured = env("RSR_MEMORY_METRICS_UPDATE_INTERVAL");
  if (!configured || !*configured) return kDefault;
  char* end = nullptr;
  const double v = std::strtod(configured, &end);
  return end && *end == '\0' && v > 0 && v <= 86400 ? v : kDefault;
}

int run_command(const RunOptions& options) {
  if (options.command.empty())
    throw CtlError(kExitUsage, "run needs a command: rsrmemctl run [--env-file F] -- CMD ARGS...");

  const std::string lib =
      find_preload_library([](const char* n) { return std::getenv(n); }, self_exe());
  if (!options.env_file.empty()) {
    const EnvFile file = load_env_file(options.env_file);
    for (const std::string& w : file.warnings) std::cerr << "rsrmemctl: warning: " << w << '\n';
    for (const EnvEntry& e : file.entries) setenv(e.key.c_str(), e.value.c_str(), 1);
  }
  setenv("LD_PRELOAD", prepend_ld_preload(lib, std::getenv("LD_PRELOAD")).c_str(), 1);

  std::optional<GatewayAddress> gateway, pyroscope;
  if (!options.push_gateway.empty()) gateway = parse_gateway_url(options.push_gateway);
  if (!options.pyroscope.empty()) pyroscope = parse_pyroscope_url(options.pyroscope);

  std::vector<char*> argv;
  for (const std::string& a : options.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Block the forwarded signals until the child's pid is known, so none is lost in between.
  sigset_t forwarded, previous;
  sigemptyset(&forwarded);
  for (int sig : kForwarded) sigaddset(&forwarded, sig);
  sigprocmask(SIG_BLOCK, &forwarded, &previous);
  struct sigaction sa {};
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwarded) sigaction(sig, &sa, nullptr);

  // The child reports a failed exec through this pipe; a successful exec closes it (CLOEXEC).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    throw CtlError(kExitConnection, std::string("cannot create a pipe: ") + std::strerror(errno));
  const pid_t child = fork();
  if (child < 0) throw CtlError(kExitConnection, std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    close(report[0]);
    for (int sig : kForwarded) signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    execvp(argv[0], argv.data());
    const int err = errno;
    (void)!write(report[1], &err, sizeof err);
    _exit(127);
  }
  g_child = child;
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  close(report[1]);

  int exec_errno = 0;
  ssize_t n;
  do n = read(report[0], &exec_errno, sizeof exec_errno);
  while (n < 0 && errno == EINTR);
  close(report[0]);

  int status = 0;
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    std::cerr << "rsrmemctl: cannot run '" << options.command[0]
              << "': " << std::strerror(exec_errno) << '\n';
    return exec_errno == ENOENT ? 127 : 126;
  }

  std::cerr << "rsrmemctl: monitoring pid " << child << std::endl;
  const auto env = [](const char* n) { return std::getenv(n); };
  const auto interval = std::chrono::milliseconds(static_cast<long long>(
      (options.push_interval_s > 0 ? options.push_interval_s : default_push_interval_s(env)) *
      1000));
  const std::string socket = default_socket_dir() + "/" + std::to_string(child) + ".sock";
  std::optional<RunPusher> pusher;
  if (gateway) {
    const char* service = std::getenv("RSR_SERVICE_NAME");
    pusher.emplace(RunPusher::Settings{*gateway, interval, socket, child,
                                       service && *service ? service : base_name(options.command[0])});
  }
  std::optional<RunProfilePusher> profiles;
  if (pyroscope) profiles.emplace(*pyroscope, socket, interval, std::chrono::milliseconds(5000));
  for (;;) {
    const pid_t r = waitpid(child, &status, 0);
    if (r == child) break;
    if (r < 0 && errno != EINTR)
      throw CtlError(kExitConnection, std::string("waitpid: ") + std::strerror(errno));
  }
  g_child = 0;
  int code = 1;
  if (WIFEXITED(status)) code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) code = 128 + WTERMSIG(status);
  profiles.reset();
  if (pusher) std::move(*pusher).finish(code);
  return code;
}

}  // namespace rsr::ctl
