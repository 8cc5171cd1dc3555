// Test harness for programs run under the real preload: start a process with or without
// LD_PRELOAD=librsrmem.so, talk to it through pipes, query its control socket, and always kill
// and reap what was started (Process is an RAII guard over the whole process group).
//
// Paths come from the environment that meson sets (tests/preload/meson.build):
//   RSR_TEST_LIB   the built librsrmem.so
//   RSR_TEST_BIN   the folder holding the test programs
//   RSR_TEST_CTL   the built rsrmemctl (optional)
// Not thread-safe: one test at a time, as GoogleTest runs them.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocol.h"

namespace rt {

// Paths from the environment; fails the test (and returns "") when unset.
std::string preload_lib();
// librsrmem-heap.so, which the library loads its private heap through, from its own directory
// first: a copy of the library elsewhere gets a copy of it beside.
std::string preload_heap_lib();
std::string program(const std::string& name);  // $RSR_TEST_BIN/name
std::string ctl_path();                        // "" when not configured

// A fresh directory (mkdtemp, mode 0700), removed recursively with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "rsrtest");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct Spawn {
  std::vector<std::string> argv;
  bool preload = true;         // LD_PRELOAD=librsrmem.so
  std::string preload_path;    // overrides preload_lib() when not empty
  std::string socket_dir;      // RSR_SOCKET_DIR (required with preload, so tests never share)
  std::map<std::string, std::string> env;  // extra or overriding variables
  std::string cwd;
  uid_t uid = static_cast<uid_t>(-1);  // drop to this uid/gid before exec (root only)
  gid_t gid = static_cast<gid_t>(-1);
  std::vector<gid_t> groups;           // supplementary groups after dropping (default: none)
};

// The environment a spawned process gets: ours without LD_PRELOAD and RSR_*, plus the spawn's.
std::vector<std::string> child_environment(const Spawn& s);

class Process {
 public:
  Process() = default;
  explicit Process(const Spawn& s);  // starts it; check started() / start_error()
  ~Process();                        // SIGKILL to the process group, then reap all of it
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  bool write(const std::string& text);
  void close_stdin();
  // Next line of stdout (without '\n'); nullopt on EOF or timeout.
  std::optional<std::string> read_line(int timeout_ms);
  // Reads stdout until a line for which `pred` is true; returns it, or nullopt.
  template <class Pred>
  std::optional<std::string> read_until(Pred pred, int timeout_ms);
  // Waits for exit; collects remaining output. nullopt on timeout (process left running).
  std::optional<int> wait(int timeout_ms);
  const std::string& out() const { return out_all_; }  // all of stdout read so far
  const std::string& err() const { return err_; }      // all of stderr read so far
  std::string describe() const;                        // for failure messages

 private:
  void pump(int timeout_ms);  // reads whatever stdout/stderr have, waiting up to timeout_ms
  void kill_and_reap();

  pid_t pid_ = -1;
  int in_ = -1, out_fd_ = -1, err_fd_ = -1;
  std::string out_buf_, out_all_, err_;
  std::optional<int> status_;
};

template <class Pred>
std::optional<std::string> Process::read_until(Pred pred, int timeout_ms) {
  for (;;) {
    auto line = read_line(timeout_ms);
    if (!line) return std::nullopt;
    if (pred(*line)) return line;
  }
}

struct RunResult {
  int status = -1;  // raw wait status
  bool timed_out = false;
  bool started = false;
  std::string out, err;
  std::string describe() const;  // "exit 0" / "killed by signal 11" / "timed out"
};

// Starts, feeds `input` to stdin, closes it, and waits up to timeout_ms.
RunResult run(const Spawn& s, int timeout_ms, const std::string& input = "");

std::string describe_status(int status);

// ---------------------------------------------------------------------------------------------
// Control socket

struct Reply {
  enum class Status { kOk, kConnectFailed, kClosed, kTimeout, kBadFrame, kBadJson };
  Status status = Status::kConnectFailed;
  rsr::proto::Kind kind = rsr::proto::Kind::kError;
  std::string payload;
  nlohmann::json json;
  std::string error;  // what went wrong, for messages
  bool served() const { return status == Status::kOk && kind == rsr::proto::Kind::kResponse; }
  std::string describe() const;
};

// One request on a fresh connection: header + payload (`send_after_ms` after connecting), then
// one frame back.
Reply query(const std::string& socket_path, const std::string& request_json, int timeout_ms = 5000,
            int send_after_ms = 0);

std::string socket_path(const std::string& dir, pid_t pid);

// {"cmd":"summary","top":top} to <dir>/<pid>.sock.
Reply summary(const std::string& dir, pid_t pid, int top = 5);
// reply.heap.<field>; fails the test (and returns -1) when missing. Reads the number as
// unsigned and converts, so a counter that went negative shows as a huge value, not a wrap.
int64_t heap_field(const Reply& r, const char* field);

// Waits until `<dir>/<pid>.sock` answers "hello" with a response frame.
bool wait_for_socket(const std::string& dir, pid_t pid, int timeout_ms, Reply* last = nullptr);

// Names in a directory (without . and ..).
std::vector<std::string> list_dir(const std::string& dir);

// Whether /proc/<pid>/maps mentions `needle`.
bool maps_contain(pid_t pid, const std::string& needle);

std::string read_file(const std::string& path);
// What a shell command writes to stdout ("" when it cannot run).
std::string run_text(const std::string& cmd);
void write_file(const std::string& path, const std::string& text, mode_t mode = 0644);

// Runs `fn` in a forked child after dropping to uid/gid; returns what it wrote to the pipe.
// Used to act as another user from a test running as root.
std::string as_user(uid_t uid, gid_t gid, const std::function<std::string()>& fn, int timeout_ms = 10000);

}  // namespace rt
