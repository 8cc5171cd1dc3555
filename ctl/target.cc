#include "target.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "client.h"
#include "config.h"
#include "errors.h"
#include "protocol.h"

namespace rsr::ctl {
namespace {

// The preload reads RSR_SOCKET_DIR through common/config, which drops a trailing " # comment"
// and surrounding blanks and ignores relative paths; do the same so both sides agree.
std::string clean_setting(const char* raw) {
  std::string v = raw ? raw : "";
  for (const char* marker : {" #", "\t#"}) {
    const size_t hash = v.find(marker);
    if (hash != std::string::npos) v.resize(hash);
  }
  const size_t first = v.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const size_t last = v.find_last_not_of(" \t");
  return v.substr(first, last - first + 1);
}

// Sockets are only looked for where the library would make them: a directory nobody but its
// owner can write to. In one that group or others may write, any socket could be an impostor's
// (fake figures for an exporter), and the library never puts its own there.
void check_trusted(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;  // missing: nothing to trust
  if ((st.st_mode & 022) == 0) return;
  char mode[8];
  snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  throw CtlError(kExitUsage, "socket directory " + dir + " is writable by group or others (mode " + mode +
                                 "): a socket in it could be anyone's, and the library never uses such a "
                                 "directory; point RSR_SOCKET_DIR at one only its owner can write to");
}

// A socket path that cannot even be looked at: say why, naming the directory.
[[noreturn]] void unreachable(const std::string& dir, const std::string& path, int err) {
  throw CtlError(kExitNotFound, "cannot reach " + path + ": " + std::strerror(err) +
                                    " (the socket directory " + dir +
                                    " lets in its owner and its group: another user needs to be in "
                                    "that group and named in the process's RSR_ALLOWED_UIDS)");
}

std::string join_candidates(const std::vector<SocketFile>& files) {
  std::string out;
  for (const SocketFile& f : files) {
    if (!out.empty()) out += ", ";
    out += describe_pid(f.pid);
  }
  return out;
}

}  // namespace

std::string resolve_socket_dir(const EnvLookup& env, uid_t uid) {
  // The same rule as the preload's (common/config.h); a relative XDG_RUNTIME_DIR is ignored, as
  // the XDG base-directory spec says.
  const std::string configured = clean_setting(env("RSR_SOCKET_DIR"));
  char dir[rsr::kPathMax];
  rsr::socket_dir_for(configured.c_str(), env("XDG_RUNTIME_DIR"), uid, dir, sizeof dir);
  return dir;
}

std::string default_socket_dir() {
  return resolve_socket_dir([](const char* name) { return std::getenv(name); }, geteuid());
}

std::optional<pid_t> pid_from_socket_name(std::string_view name) {
  const pid_t pid = proto::socket_name_pid(name);
  if (pid <= 0) return std::nullopt;
  return pid;
}

namespace {

// A service's directory below the socket directory (README "Fleet set-up", systemd): not a hidden
// name, a directory itself, not a link to one; one that group or others may write holds nothing
// for this user.
bool usable_service_dir(const std::string& sub) {
  if (sub.compare(sub.rfind('/') + 1, 1, ".") == 0) return false;
  struct stat st;
  return lstat(sub.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 022) == 0;
}

}  // namespace

std::vector<SocketFile> scan_socket_dir(const std::string& dir) {
  std::vector<SocketFile> out;
  check_trusted(dir);
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT || errno == ENOTDIR) return out;
    if (errno == EACCES) unreachable(dir, dir, errno);
    throw CtlError(kExitNotFound,
                   "cannot read socket directory " + dir + ": " + std::strerror(errno));
  }
  std::vector<std::string> services;
  while (const dirent* e = readdir(d)) {
    if (auto pid = pid_from_socket_name(e->d_name)) {
      out.push_back({*pid, dir + "/" + e->d_name});
    } else {
      services.push_back(dir + "/" + e->d_name);
    }
  }
  closedir(d);
  // One level down: a directory per service. One this user may not read holds nothing for it.
  for (const std::string& sub : services) {
    if (!usable_service_dir(sub)) continue;
    DIR* s = opendir(sub.c_str());
    if (!s) continue;
    while (const dirent* e = readdir(s))
      if (auto pid = pid_from_socket_name(e->d_name)) out.push_back({*pid, sub + "/" + e->d_name});
    closedir(s);
  }
  std::sort(out.begin(), out.end(),
            [](const SocketFile& a, const SocketFile& b) { return a.pid < b.pid; });
  return out;
}

bool pid_alive(pid_t pid) {
  if (pid <= 0) return false;
  return kill(pid, 0) == 0 || errno != ESRCH;
}

std::string remove_stale_socket(const std::string& dir, const SocketFile& socket) {
  const size_t slash = socket.path.rfind('/');
  if (slash == std::string::npos) return "not in the socket directory " + dir;
  // In the directory, or in a service's directory right below it (as scan_socket_dir finds them).
  const std::string parent = socket.path.substr(0, slash);
  const size_t up = parent.rfind('/');
  const bool in_service_dir = up != std::string::npos && parent.substr(0, up) == dir && usable_service_dir(parent);
  if (parent != dir && !in_service_dir) return "not in the socket directory " + dir;
  const std::string name = socket.path.substr(slash + 1);
  if (pid_from_socket_name(name) != socket.pid) return "not named <pid>.sock";
  struct stat st;
  if (lstat(socket.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return "";  // someone else already removed it
    return std::string("cannot stat it: ") + std::strerror(errno);
  }
  if (!S_ISSOCK(st.st_mode)) return "not a socket";
  // Another user's (a service an exporter watches): that user's next monitored process in this
  // directory removes it.
  if (st.st_uid != geteuid())
    return "owned by uid " + std::to_string(st.st_uid) + ", whose next monitored process removes it";
  if (unlink(socket.path.c_str()) != 0 && errno != ENOENT)
    return std::string("cannot remove it: ") + std::strerror(errno);
  return "";
}

std::vector<Target> resolve_targets(const TargetRequest& req) {
  switch (req.mode) {
    case TargetMode::kSocket: {
      struct stat st;
      if (stat(req.socket.c_str(), &st) != 0)
        throw CtlError(kExitNotFound, "no socket " + req.socket + ": " + std::strerror(errno));
      if (!S_ISSOCK(st.st_mode)) throw CtlError(kExitNotFound, req.socket + " is not a socket");
      const size_t slash = req.socket.rfind('/');
      const auto pid = pid_from_socket_name(
          slash == std::string::npos ? req.socket : req.socket.substr(slash + 1));
      return {Target{pid.value_or(0), req.socket, false}};
    }
    case TargetMode::kPid: {
      check_trusted(req.dir);
      std::string path = req.dir + "/" + std::to_string(req.pid) + ".sock";
      struct stat st;
      if (lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
        for (const SocketFile& f : scan_socket_dir(req.dir))  // in a service's directory
          if (f.pid == req.pid) path = f.path;
      }
      if (lstat(path.c_str(), &st) != 0) {
        if (errno == EACCES) unreachable(req.dir, path, errno);
        std::string msg = "no monitored process with pid " + std::to_string(req.pid) +
                          " (no socket " + path + ")";
        if (!pid_alive(req.pid)) msg += "; no such process";
        throw CtlError(kExitNotFound, msg);
      }
      if (!pid_alive(req.pid))
        throw CtlError(kExitNotFound, "process " + std::to_string(req.pid) +
                                          " is gone (stale socket " + path +
                                          "; `rsrmemctl list` removes it)");
      return {Target{req.pid, path, false}};
    }
    case TargetMode::kAll: {
      std::vector<Target> out;
      for (const SocketFile& f : scan_socket_dir(req.dir)) out.push_back({f.pid, f.path, true});
      return out;
    }
    case TargetMode::kAuto: {
      std::vector<SocketFile> live;
      for (const SocketFile& f : scan_socket_dir(req.dir))
        if (pid_alive(f.pid)) live.push_back(f);
      // Several candidates: drop the stale ones (pid reused, nothing listening) so a leftover
      // socket does not make the choice ambiguous. One candidate is used as is: its own request
      // reports a refusal.
      if (live.size() > 1) {
        std::vector<SocketFile> answering;
        for (const SocketFile& f : live) {
          try {
            Client(f.path, std::chrono::seconds(1)).request("hello");
          } catch (const CtlError& e) {
            if (e.stale()) continue;
          }
          answering.push_back(f);
        }
        if (!answering.empty()) live = std::move(answering);
      }
      if (live.empty())
        throw CtlError(kExitNotFound,
                       "no monitored process found in " + req.dir +
                           " (start one with `rsrmemctl run -- CMD`, or name it with --pid or "
                           "--socket)");
      if (live.size() > 1)
        throw CtlError(kExitUsage, std::to_string(live.size()) +
                                       " monitored processes: " + join_candidates(live) +
                                       "; choose one with --pid PID, or use --all");
      return {Target{live[0].pid, live[0].path, false}};
    }
  }
  return {};
}

std::string describe_pid(pid_t pid) {
  std::string out = std::to_string(pid);
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  if (comm && std::getline(comm, name) && !name.empty()) out += " (" + name + ")";
  return out;
}

}  // namespace rsr::ctl
