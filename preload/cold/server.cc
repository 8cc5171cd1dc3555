// The control socket: one Unix stream socket per process at <dir>/<pid>.sock, served by one
// background thread that also runs the once-a-second tick and the leak checks. Its peers are
// served concurrently (peers.h); this file keeps the socket itself whatever the program does:
//  - the listening descriptor is an OwnedFd (high number, close-on-exec), checked every round
//    and before every accept(); once the program has closed it or dup2()ed over it, it is
//    forgotten (never closed) and the socket is made again at the same path;
//  - accept() out of descriptors (EMFILE) pauses accepting for a moment instead of spinning.
//
// The directory belongs to the service's user and gives nobody else access (0700); the socket
// is 0600, and SO_PEERCRED decides who is served (peers.cc).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

struct Listener {
  OwnedFd fd;
  int64_t retry_at_ms = 0;  // when to make the socket again (while there is none)
  int64_t retry_delay_ms = 0;
  int64_t accept_paused_until_ms = 0;
  bool failing = false;  // a failure to make it was logged; quiet until it works again
};
Listener g_listen;

// Where the socket goes.
struct Place {
  char dir[kPathMax];
  char path[sizeof(sockaddr_un::sun_path)];
};

bool prepare(Place* pl, char* why, size_t cap) {
  socket_dir_for(g_cold.config.socket_dir, getenv("XDG_RUNTIME_DIR"), static_cast<unsigned>(geteuid()), pl->dir,
                 sizeof pl->dir);
  if (mkdir(pl->dir, 0700) != 0 && errno != EEXIST) {
    snprintf(why, cap, "cannot create %s: %s", pl->dir, strerror(errno));
    return false;
  }
  struct stat st{};
  if (lstat(pl->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, cap, "%s is not a directory", pl->dir);
    return false;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    snprintf(why, cap, "%s must be owned by uid %u with mode 0700 (is uid %u, mode %03o)", pl->dir,
             static_cast<unsigned>(geteuid()), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_mode & 0777));
    return false;
  }
  const int n = snprintf(pl->path, sizeof pl->path, "%s/%d.sock", pl->dir, static_cast<int>(getpid()));
  if (n < 0 || static_cast<size_t>(n) >= sizeof pl->path) {
    snprintf(why, cap, "the path %s/%d.sock is too long for a socket (at most %zu bytes)", pl->dir,
             static_cast<int>(getpid()), sizeof pl->path - 1);
    return false;
  }
  return true;
}

bool open_socket(char* why, size_t cap) {
  Place pl;
  if (!prepare(&pl, why, cap)) return false;
  OwnedFd fd = adopt(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    snprintf(why, cap, "socket(): %s", strerror(errno));
    return false;
  }
  fchmod(fd.fd, 0600);  // the mode bind() gives the file: private from its first moment
  unlink(pl.path);      // a stale socket of an earlier process with our pid
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, pl.path, std::strlen(pl.path) + 1);
  if (bind(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    snprintf(why, cap, "%s: %s", pl.path, strerror(errno));
    release(fd);
    return false;
  }
  if (chmod(pl.path, 0600) != 0 || listen(fd.fd, kBacklog) != 0) {
    snprintf(why, cap, "%s: %s", pl.path, strerror(errno));
    unlink(pl.path);
    release(fd);
    return false;
  }
  g_listen.fd = fd;
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
  for (int i = 0; i < kAcceptBurst; ++i) {
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
    const OwnedFd peer = adopt(c);
    if (peer.valid()) peers_add(peer, now_ms);
  }
}

// Every round: the listening descriptor is still ours; a socket is made again when due.
void keep_listener(int64_t now_ms) {
  if (g_listen.fd.valid() && !still_ours(g_listen.fd)) lose_listener("was closed or replaced by the program");
  if (!g_listen.fd.valid() && now_ms >= g_listen.retry_at_ms) reopen(now_ms);
}

void* control_main(void*) {
  hot::guard_enter();  // this thread's incidental libc allocations are not the service's
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals belong to the service's threads
  int64_t next_tick = monotonic_ms();
  pollfd fds[1 + kMaxPeers];
  for (;;) {
    int64_t now = monotonic_ms();
    if (now >= next_tick || now >= leaks_next_due_ms()) {
      pthread_mutex_lock(&g_cold.mutex);
      try {
        if (now >= next_tick) tick();
        leaks_run_due(now);
      } catch (...) {  // out of private heap: try again at the next turn
      }
      pthread_mutex_unlock(&g_cold.mutex);
      if (now >= next_tick) next_tick = now + 1000;
      now = monotonic_ms();
    }
    keep_listener(now);
    int64_t wake = std::min({next_tick, leaks_next_due_ms(), peers_expire(now)});
    const bool listening = g_listen.fd.valid() && now >= g_listen.accept_paused_until_ms;
    if (!g_listen.fd.valid()) wake = std::min(wake, g_listen.retry_at_ms);
    else if (!listening) wake = std::min(wake, g_listen.accept_paused_until_ms);
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

bool start_control_thread() {
  reopen(monotonic_ms());  // here, so the socket exists when main() starts
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t tid;
  const bool ok = pthread_create(&tid, &attr, control_main, nullptr) == 0;
  pthread_attr_destroy(&attr);
  if (ok) pthread_setname_np(tid, "rsrmem-ctl");
  return ok;
}

void socket_fork_child() {
  release(g_listen.fd);  // the child's copy of the parent's socket; the file stays the parent's
  g_listen = Listener{};
  g_cold.socket_path[0] = '\0';
  g_cold.socket_ok = false;
  peers_fork_child();
}

void close_socket_at_exit() {
  if (getpid() != g_cold.pid || !g_cold.socket_path[0]) return;
  unlink(g_cold.socket_path);
  g_cold.socket_path[0] = '\0';
}

}  // namespace rsr::cold
