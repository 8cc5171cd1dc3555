// rsrmemctl's exit codes and the one error type every layer throws.
//
// The CLI side reports failures as exceptions carrying the exit code they map to, so a command
// is written as straight-line code and main() turns whatever escapes into one message on stderr
// and one exit code. (The preload never throws: this file is CLI-only.)
#pragma once

#include <stdexcept>
#include <string>

namespace rsr::ctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitNegative = 1,    // the command ran and its answer is "no" (e.g. degraded health)
  kExitUsage = 2,       // bad flag, bad value, malformed env file, ambiguous target
  kExitNotFound = 3,    // no such monitored process / socket / file
  kExitConnection = 4,  // connection refused or timed out, protocol error, peer refused
};

// Documented in `rsrmemctl --help`.
inline constexpr const char* kExitCodeHelp =
    "Exit codes:\n"
    "  0  success\n"
    "  1  negative result (health-check: degraded; check-leaks: leak indicators found)\n"
    "  2  bad usage: unknown flag, bad value, malformed env file, ambiguous target\n"
    "  3  target not found: no such monitored process, socket or file\n"
    "  4  connection refused or timed out, protocol error, or the process refused the request\n"
    "  run: the command's own exit status (128+N when killed by signal N; 126/127 when it\n"
    "       cannot be executed)\n";

class CtlError : public std::runtime_error {
 public:
  // `stale` marks a socket nobody listens on any more (ECONNREFUSED): callers that own cleanup
  // (list, --all) remove it instead of failing.
  CtlError(ExitCode code, const std::string& message, bool stale = false)
      : std::runtime_error(message), code_(code), stale_(stale) {}
  ExitCode code() const { return code_; }
  bool stale() const { return stale_; }

 private:
  ExitCode code_;
  bool stale_;
};

}  // namespace rsr::ctl
