// The control socket: one Unix stream socket per process at <dir>/<pid>.sock, served by one
// background thread that also runs the once-a-second tick and the leak checks. Its peers are
// served concurrently (peers.h); this file keeps the socket itself whatever the program does:
//  - the listening descriptor is an OwnedFd (high number, close-on-exec), checked every round
//    and before every accept(); once the program has closed it or dup2()ed over it, it is
//    forgotten (never closed) and the socket is made again at the same path;
//  - the socket file is checked every tick: removed (its directory too), it is made again;
//    replaced by someone's file, that file is left alone (and not removed at exit);
//  - accept() out of descriptors (EMFILE) pauses accepting for a moment instead of spinning;
//  - sockets of processes that are gone (children ended by _exit(), crashes) are removed at
//    start and, in a process that forks, every few seconds: only "<pid>.sock" sockets of this
//    uid whose pid does not exist.
//
// Access (README, Security): the directory belongs to the service's user and is never group-
// or other-writable (a writer could put its own socket in our place). By default it is 0700 and
// the socket 0600. With RSR_ALLOWED_UIDS, the directory may give its group read and search
// (0750, 2750) and the socket is 0660 in the directory's group: the allowed users reach it
// through that group, and SO_PEERCRED decides (peers.cc).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../../common/protocol.h"
#include "../hot/capture.h"
#include "../hot/engine.h"
#include "../hot/launch.h"
#include "../hot/stack.h"
#include "fds.h"
#include "leaks.h"
#include "log.h"
#include "peers.h"
#include "proc.h"
#include "state.h"

namespace rsr::cold {
namespace {

constexpr int kBacklog = 64;
constexpr int kAcceptBurst = 64;  // connections taken per round, so peers already in get their turn
constexpr int64_t kRetryFirstMs = 1000;
constexpr int64_t kRetryMaxMs = 60000;
constexpr int64_t kAcceptPauseMs = 500;
constexpr int64_t kSweepEveryMs = 5000;

struct Listener {
  OwnedFd fd;
  dev_t file_dev = 0;  // the socket file bind() made
  ino_t file_ino = 0;
  int64_t retry_at_ms = 0;  // when to make the socket again (while there is none)
  int64_t retry_delay_ms = 0;
  int64_t accept_paused_until_ms = 0;
  bool failing = false;     // a failure to make it was logged; quiet until it works again
  bool file_taken = false;  // the path holds someone else's file (logged once)
};
Listener g_listen;

std::atomic<unsigned> g_forks{0};  // children forked since start (or since this process's fork)
bool g_swept_at_start = false;
int64_t g_next_sweep_ms = 0;

void note_fork() { g_forks.fetch_add(1, std::memory_order_relaxed); }

bool allowed_uids_set() {
  for (const char* s = g_cold.config.allowed_uids; *s; ++s)
    if (*s >= '0' && *s <= '9') return true;
  return false;
}

// Where the socket goes. Every check runs before anything is created.
struct Place {
  char dir[kPathMax];
  char path[sizeof(sockaddr_un::sun_path)];
  gid_t group = 0;  // the directory's
};

bool prepare(Place* pl, char* why, size_t cap) {
  socket_dir_for(g_cold.config.socket_dir, g_cold.runtime_dir[0] ? g_cold.runtime_dir : nullptr,
                 static_cast<unsigned>(geteuid()), pl->dir, sizeof pl->dir);
  const int n = snprintf(pl->path, sizeof pl->path, "%s/%d.sock", pl->dir, static_cast<int>(getpid()));
  if (n < 0 || static_cast<size_t>(n) >= sizeof pl->path) {
    snprintf(why, cap, "the path %s/%d.sock is too long for a socket (at most %zu bytes)", pl->dir,
             static_cast<int>(getpid()), sizeof pl->path - 1);
    return false;
  }
  const bool shared = allowed_uids_set();
  if (shared && !g_cold.config.socket_dir[0]) {
    static bool said = false;
    if (!said)
      log(Level::kWarn, "RSR_ALLOWED_UIDS is set but RSR_SOCKET_DIR is not: other users may not reach the default "
          "%s (under XDG_RUNTIME_DIR, mode 0700); give the service a directory of its own, in a group of the allowed "
          "users, mode 2750 (README, Security)", pl->dir);
    said = true;
  }
  const mode_t mode = shared ? 0750 : 0700;
  const bool created = mkdir(pl->dir, mode) == 0;
  if (!created && errno != EEXIST) {
    snprintf(why, cap, "cannot create %s: %s", pl->dir, strerror(errno));
    return false;
  }
  OwnedFd dir = open_owned(pl->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct stat st{};
  if (!dir.valid() || fstat(dir.fd, &st) != 0) {
    snprintf(why, cap, "%s: %s", pl->dir, errno == ELOOP ? "a symbolic link, not a directory" : strerror(errno));
    release(dir);
    return false;
  }
  if (created && (st.st_mode & 0777) != mode && fchmod(dir.fd, mode) == 0) st.st_mode = (st.st_mode & ~0777u) | mode;
  release(dir);
  const unsigned m = st.st_mode & 07777;
  if (st.st_uid != geteuid()) {
    snprintf(why, cap, "%s must belong to uid %u (it belongs to uid %u)", pl->dir, static_cast<unsigned>(geteuid()),
             static_cast<unsigned>(st.st_uid));
  } else if (m & 022) {
    snprintf(why, cap, "%s is writable by group or others (mode %04o): whoever writes there could put their own socket "
             "in its place (chmod go-w)", pl->dir, m);
  } else if (!shared && (m & 077)) {
    snprintf(why, cap, "%s gives group or others access (mode %04o): it must be 0700, or RSR_ALLOWED_UIDS must name "
             "the users it is shared with (README, Security)", pl->dir, m);
  } else if (shared && (m & 007)) {
    snprintf(why, cap, "%s gives others access (mode %04o): with RSR_ALLOWED_UIDS it must be 0750 or 2750, the "
             "allowed users reaching it through its group", pl->dir, m);
  } else {
    pl->group = st.st_gid;
    return true;
  }
  return false;
}

// The socket's group and mode: 0600, or 0660 in the directory's group with RSR_ALLOWED_UIDS.
void set_access(const Place& pl) {
  mode_t mode = 0600;
  struct stat st{};
  if (allowed_uids_set() && lstat(pl.path, &st) == 0) {
    if (st.st_gid == pl.group || lchown(pl.path, static_cast<uid_t>(-1), pl.group) == 0) {
      mode = 0660;
    } else {
      static bool said = false;
      if (!said)
        log(Level::kWarn, "RSR_ALLOWED_UIDS: the socket cannot take group %u of %s (%s): the allowed users cannot "
            "connect; make the directory setgid (chmod g+s) so sockets take its group", static_cast<unsigned>(pl.group),
            pl.dir, strerror(errno));
      said = true;
    }
  }
  chmod(pl.path, mode);
}

// A Unix stream socket that is neither bound nor listening.
bool fresh_unix_socket(const OwnedFd& f) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  int type = 0, listening = 1;
  socklen_t n = sizeof type, m = sizeof listening;
  return getsockname(f.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sun_family == AF_UNIX &&
         len <= sizeof(sa_family_t) && getsockopt(f.fd, SOL_SOCKET, SO_TYPE, &type, &n) == 0 && type == SOCK_STREAM &&
         getsockopt(f.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &m) == 0 && listening == 0;
}

// A connection accepted on our socket: its local address is our socket's path.
bool accepted_here(const OwnedFd& f) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  return getsockname(f.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && addr.sun_family == AF_UNIX &&
         len > sizeof(sa_family_t) && strncmp(addr.sun_path, g_cold.socket_path, sizeof addr.sun_path) == 0;
}

bool open_socket(char* why, size_t cap) {
  Place pl;
  if (!prepare(&pl, why, cap)) return false;
  // The copy must still be the fresh socket (unbound, not listening) before it is bound: a
  // number the program took over in between would otherwise be bound to our path.
  OwnedFd fd = adopt_checked(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), fresh_unix_socket);
  if (!fd.valid()) {
    snprintf(why, cap, "socket(): %s", strerror(errno));
    return false;
  }
  fchmod(fd.fd, 0600);  // the mode bind() gives the file: private from its first moment
  // A file at the path: a socket of ours left by an earlier process with this pid (or by this
  // image before exec) goes; anything else is not ours to remove.
  struct stat st{};
  if (lstat(pl.path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
      snprintf(why, cap, "%s exists and is not a socket of uid %u: left alone", pl.path,
               static_cast<unsigned>(geteuid()));
      release(fd);
      return false;
    }
    unlink(pl.path);
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, pl.path, std::strlen(pl.path) + 1);
  if (bind(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    snprintf(why, cap, "%s: %s", pl.path, strerror(errno));
    release(fd);
    return false;
  }
  set_access(pl);
  if (listen(fd.fd, kBacklog) != 0 || lstat(pl.path, &st) != 0) {
    snprintf(why, cap, "%s: %s", pl.path, strerror(errno));
    unlink(pl.path);
    release(fd);
    return false;
  }
  g_listen.fd = fd;
  g_listen.file_dev = st.st_dev;
  g_listen.file_ino = st.st_ino;
  g_listen.file_taken = false;
  snprintf(g_cold.socket_path, sizeof g_cold.socket_path, "%s", pl.path);
  return true;
}

// Makes the socket (again); on failure, tries again later, doubling the wait up to a minute, and
// logs only the first failure of a run of them.
void reopen(int64_t now_ms) {
  char why[kPathMax + 256];
  if (open_socket(why, sizeof why)) {
    if (g_listen.failing) log(Level::kWarn, "control socket %s is open", g_cold.socket_path);
    g_listen.failing = false;
    g_listen.retry_delay_ms = 0;
    g_cold.socket_ok = true;
    return;
  }
  if (!g_listen.failing) log(Level::kWarn, "no control socket: %s (trying again now and then)", why);
  g_listen.failing = true;
  g_cold.socket_ok = false;
  g_listen.retry_delay_ms = std::clamp(g_listen.retry_delay_ms * 2, kRetryFirstMs, kRetryMaxMs);
  g_listen.retry_at_ms = now_ms + g_listen.retry_delay_ms;
}

// The program closed the listening descriptor or put something else under its number: forget
// the number (it is the program's now) and make the socket again at once.
void lose_listener(const char* how) {
  log(Level::kInfo, "control socket: descriptor %d %s; making %s again", g_listen.fd.fd, how, g_cold.socket_path);
  forget(g_listen.fd);
  g_cold.socket_ok = false;
  g_listen.retry_at_ms = 0;
  g_listen.retry_delay_ms = 0;
}

void accept_burst(short revents, int64_t now_ms) {
  if (revents & POLLNVAL) return lose_listener("was closed by the program");
  for (int i = 0; i < kAcceptBurst && peers_room_at(now_ms) <= now_ms; ++i) {
    if (!still_ours(g_listen.fd)) return lose_listener("was closed or replaced by the program");
    const int c = accept4(g_listen.fd.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        static bool said = false;
        if (!said) log(Level::kWarn, "control socket: cannot accept a connection (%s); waiting for free descriptors", strerror(errno));
        said = true;
        g_listen.accept_paused_until_ms = now_ms + kAcceptPauseMs;
        return;
      }
      return lose_listener("no longer accepts connections");
    }
    // The copy must be a connection to our socket (its local address is our path): a number
    // the program took over in between is left to it.
    const OwnedFd peer = adopt_checked(c, accepted_here);
    if (peer.valid()) peers_add(peer, now_ms);
  }
}

// Removes "<pid>.sock" sockets of this uid in `dir` whose process is gone. Reads the directory
// with getdents64 into a stack buffer: nothing here allocates.
void sweep_stale(const char* dir) {
  OwnedFd d = open_owned(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  alignas(8) char buf[4096];
  while (still_ours(d)) {
    const ssize_t n = getdents64(d.fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const dirent64*>(buf + off);
      off += e->d_reclen;
      const pid_t pid = proto::socket_name_pid(e->d_name);
      if (pid <= 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
      struct stat st{};
      if (fstatat(d.fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
        continue;
      unlinkat(d.fd, e->d_name, 0);
    }
  }
  release(d);
}

// Once a second: the socket file is still ours and in place; stale sockets go.
void socket_tick(int64_t now_ms) {
  if (g_listen.fd.valid() && g_cold.socket_path[0]) {
    struct stat st{};
    if (lstat(g_cold.socket_path, &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) {  // the file or its directory was removed
        log(Level::kInfo, "control socket: %s was removed; making it again", g_cold.socket_path);
        release(g_listen.fd);
        g_cold.socket_ok = false;
        g_listen.retry_at_ms = 0;
      }
    } else if (st.st_dev != g_listen.file_dev || st.st_ino != g_listen.file_ino) {
      if (!g_listen.file_taken)
        log(Level::kWarn, "control socket: %s is now someone else's file; left alone (no socket until it is removed)",
            g_cold.socket_path);
      g_listen.file_taken = true;
      g_cold.socket_ok = false;
    } else {
      g_listen.file_taken = false;
      g_cold.socket_ok = true;
    }
  }
  const bool due = !g_swept_at_start || (g_forks.load(std::memory_order_relaxed) > 0 && now_ms >= g_next_sweep_ms);
  if (due && g_cold.socket_path[0]) {
    char dir[kPathMax];
    snprintf(dir, sizeof dir, "%s", g_cold.socket_path);
    if (char* slash = std::strrchr(dir, '/')) *slash = '\0';
    sweep_stale(dir);
    g_swept_at_start = true;
    g_next_sweep_ms = now_ms + kSweepEveryMs;
  }
}

// Every round: the listening descriptor is still ours; a socket is made again when due.
void keep_listener(int64_t now_ms) {
  if (g_listen.fd.valid() && !still_ours(g_listen.fd)) lose_listener("was closed or replaced by the program");
  if (!g_listen.fd.valid() && now_ms >= g_listen.retry_at_ms) reopen(now_ms);
}

// How long the control thread waits before it finishes the start-up (start_control_thread).
std::atomic<int64_t> g_quiet_start_ms{0};

void* control_main(void*) {
  hot::guard_enter();  // this thread's incidental libc allocations are not the service's
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals belong to the service's threads
  hot::wait_unwinder_wanted(g_quiet_start_ms.load(std::memory_order_relaxed));
  pthread_mutex_lock(&g_cold.mutex);
  const bool on = finish_start();
  unwinder_load_if_wanted();
  hot::unwinder_no_more_waits();
  pthread_mutex_unlock(&g_cold.mutex);
  if (!on) return nullptr;
  if (!g_listen.fd.valid()) reopen(monotonic_ms());  // before the first round sweeps its directory
  // Named by itself: naming another thread opens a /proc file, a descriptor the program's
  // close-all could take over.
  pthread_setname_np(pthread_self(), "rsrmem-ctl");
  int64_t next_tick = monotonic_ms();
  pollfd fds[1 + kMaxPeers];
  for (;;) {
    int64_t now = monotonic_ms();
    if (hot::g_unwinder_state.load(std::memory_order_acquire) == hot::kUnwinderWanted) {
      pthread_mutex_lock(&g_cold.mutex);
      unwinder_load_if_wanted();
      pthread_mutex_unlock(&g_cold.mutex);
    }
    if (now >= next_tick || now >= leaks_next_due_ms()) {
      pthread_mutex_lock(&g_cold.mutex);
      try {
        if (now >= next_tick) tick();
        leaks_run_due(now);
      } catch (...) {  // out of private heap: try again at the next turn
      }
      pthread_mutex_unlock(&g_cold.mutex);
      if (now >= next_tick) {
        socket_tick(now);
        next_tick = now + 1000;
      }
      now = monotonic_ms();
    }
    keep_listener(now);
    int64_t wake = std::min({next_tick, leaks_next_due_ms(), peers_expire(now)});
    const int64_t accept_at = std::max(g_listen.accept_paused_until_ms, peers_room_at(now));
    const bool listening = g_listen.fd.valid() && now >= accept_at;
    if (!g_listen.fd.valid()) wake = std::min(wake, g_listen.retry_at_ms);
    else if (!listening) wake = std::min(wake, accept_at);
    int n = 0;
    if (listening) fds[n++] = {g_listen.fd.fd, POLLIN, 0};
    const int peers = peers_poll_set(fds + n);
    const int timeout = static_cast<int>(std::clamp<int64_t>(wake - now, 0, 1000));
    if (poll(fds, static_cast<nfds_t>(n + peers), timeout) <= 0) continue;
    now = monotonic_ms();
    // Peers first: accepting may evict some, and their poll results must not reach a newcomer.
    peers_after_poll(fds + n, peers, now);
    if (listening && fds[0].revents) accept_burst(fds[0].revents, now);
  }
  return nullptr;
}

}  // namespace

bool start_control_thread(int64_t quiet_ms) {
  g_quiet_start_ms.store(quiet_ms, std::memory_order_relaxed);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t tid;
  const bool ok = pthread_create(&tid, &attr, control_main, nullptr) == 0;
  pthread_attr_destroy(&attr);
  return ok;
}

namespace {

// hot::g_launch.start: the one start of a deferred control thread (hot/launch.h), from a safe
// point of one of the program's threads.
void launch_control() {
  bool pending = true;
  if (!rsr_launch_pending.compare_exchange_strong(pending, false, std::memory_order_acq_rel)) return;
  const int saved = errno;
  {
    hot::GuardScope guard;
    hot::g_launching.store(&hot::t_state, std::memory_order_release);
    const int64_t left_ns = hot::g_launch.due_ns - hot::monotonic_ns();
    const bool ok = start_control_thread(left_ns > 0 ? (left_ns + 999999) / 1000000 : 0);
    hot::g_launching.store(nullptr, std::memory_order_release);
    if (!ok) log(Level::kWarn, "control thread did not start: no socket");
  }
  errno = saved;
}

}  // namespace

void defer_control_thread(int64_t quiet_ms) {
  static bool atfork_set = false;  // handlers survive fork: once per process tree
  if (!atfork_set) pthread_atfork(nullptr, note_fork, nullptr);
  atfork_set = true;
  hot::g_launch.due_ns = hot::monotonic_ns() + quiet_ms * 1000000;
  hot::g_launch.pid = static_cast<int>(getpid());
  hot::g_launch.start = launch_control;
  rsr_launch_pending.store(true, std::memory_order_release);
}

void socket_fork_child() {
  release(g_listen.fd);  // the child's copy of the parent's socket; the file stays the parent's
  g_listen = Listener{};
  g_cold.socket_path[0] = '\0';
  g_cold.socket_ok = false;
  g_forks.store(0, std::memory_order_relaxed);
  g_swept_at_start = true;  // the parent swept; this child sweeps once it forks itself
  g_next_sweep_ms = 0;
  peers_fork_child();
}

void close_socket_at_exit() {
  if (getpid() != g_cold.pid || !g_cold.socket_path[0]) return;
  struct stat st{};
  if (lstat(g_cold.socket_path, &st) == 0 && st.st_dev == g_listen.file_dev && st.st_ino == g_listen.file_ino)
    unlink(g_cold.socket_path);  // only our own file: a replacement is someone else's
  g_cold.socket_path[0] = '\0';
}

}  // namespace rsr::cold
