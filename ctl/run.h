// `rsrmemctl run [--env-file F] -- CMD ARGS...`: launches a program under librsrmem.so.
//
// The library is found through $RSR_PRELOAD_LIB, else next to rsrmemctl itself (the build tree's
// ../preload/, then the installed ../<libdir>/, ../lib/x86_64-linux-gnu/, ../lib/), and put
// first in LD_PRELOAD. Env-file settings override the inherited environment. The child runs in
// rsrmemctl's process group (so job control works); SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
// rsrmemctl alone are forwarded to it, and rsrmemctl exits with its status.
//
// With a Pushgateway URL, the command's metrics are pushed while it runs and once more, with its
// exit status, after it exits (RunPusher in metrics_push.h).
#pragma once

#include <string>
#include <vector>

#include "target.h"

namespace rsr::ctl {

struct RunOptions {
  std::string env_file;              // empty: none
  std::vector<std::string> command;  // program and arguments, looked up in PATH
  std::string push_gateway;          // empty: no metrics pushed
  std::string pyroscope;             // empty: no heap profiles pushed
  // Seconds between pushes; 0: RSR_MEMORY_METRICS_UPDATE_INTERVAL as the command sees it (after
  // the env file), else 10.
  double push_interval_s = 0;
};

// The push interval `run` uses when none is given: RSR_MEMORY_METRICS_UPDATE_INTERVAL if it is a
// positive number of seconds, else 10.
double default_push_interval_s(const EnvLookup& env);

// The absolute path of librsrmem.so for rsrmemctl at `exe_path`. Throws CtlError
// (kExitNotFound) naming every place it looked.
std::string find_preload_library(const EnvLookup& env, const std::string& exe_path);

// LD_PRELOAD with `lib` first (any other occurrence of it removed).
std::string prepend_ld_preload(const std::string& lib, const char* current);

// Runs the command and returns the exit code rsrmemctl should exit with.
int run_command(const RunOptions& options);

}  // namespace rsr::ctl
