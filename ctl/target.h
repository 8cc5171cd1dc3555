// Which monitored processes a command talks to: socket discovery, target selection and the
// clean-up of sockets whose process is gone.
//
// A monitored process listens on <dir>/<pid>.sock where <dir> is $RSR_SOCKET_DIR, else
// $XDG_RUNTIME_DIR/rsrmem, else /tmp/rsrmem-<uid> (the same rule the preload follows).
// Clean-up only ever unlinks files named <digits>.sock, directly in that directory, that are
// sockets owned by the caller's effective uid: nothing else can be removed by mistake. Another
// user's stale socket (a service an exporter watches, see README "Security") is left for that
// user's next monitored process, which removes the sockets of processes that are gone.
//
// Discovery trusts only a directory that neither group nor others may write (the library uses no
// other): in one they may, any socket could be an impostor's.
//
// Not thread-safe (plain functions over the file system); rsrmemctl is single-threaded.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rsr::ctl {

using EnvLookup = std::function<const char*(const char* name)>;

// The socket directory for `uid` given an environment (injected so tests need not touch the
// process's own).
std::string resolve_socket_dir(const EnvLookup& env, uid_t uid);
// The same for this process: ::getenv and the effective uid.
std::string default_socket_dir();

// "<digits>.sock" -> pid; anything else -> nullopt.
std::optional<pid_t> pid_from_socket_name(std::string_view file_name);

struct SocketFile {
  pid_t pid = 0;
  std::string path;
};

// Every <pid>.sock in `dir`, and in its subdirectories one level down (a directory per service,
// each its user's, readable by an exporter's group), sorted by pid. A missing directory is an
// empty result; an unreadable one throws CtlError (kExitNotFound), one group or others may write
// kExitUsage. A subdirectory group or others may write, or one this user cannot read, is passed
// over.
std::vector<SocketFile> scan_socket_dir(const std::string& dir);

// False only when the kernel says no such process (ESRCH); EPERM means alive.
bool pid_alive(pid_t pid);

// Unlinks a stale socket if it is safe to (see the header comment). Returns an empty string on
// success, else why it was left alone.
std::string remove_stale_socket(const std::string& dir, const SocketFile& socket);

enum class TargetMode { kAuto, kPid, kSocket, kAll };

struct Target {
  pid_t pid = 0;  // 0 when --socket names a file that is not <pid>.sock
  std::string socket;
  bool cleanable = false;  // found by scanning the directory: list and --all may remove it
};

struct TargetRequest {
  TargetMode mode = TargetMode::kAuto;
  pid_t pid = 0;
  std::string socket;
  std::string dir;  // socket directory (resolve_socket_dir)
};

// Resolves the request to the processes to talk to. Throws CtlError:
//  - kPid: no socket for that pid, the pid is gone, or the directory cannot be searched
//    (kExitNotFound);
//  - kSocket: the path does not exist or is not a socket (kExitNotFound);
//  - kAuto: no live candidate (kExitNotFound) or several (kExitUsage, listing them);
//  - kAll: never throws for an empty directory; the result may be empty.
// For kAll every socket file is returned, dead ones included, so the caller can report them as
// gone and remove them.
std::vector<Target> resolve_targets(const TargetRequest& request);

// Short description of a process for messages: "1234 (svc)" from /proc/<pid>/comm.
std::string describe_pid(pid_t pid);

}  // namespace rsr::ctl
