// The control socket: one Unix stream socket per process, served by one background thread that
// also runs the once-a-second tick and the leak checks. Its peers are served concurrently
// (peers.h): a peer can only ever cost this thread time, requests are bounded in size and time,
// and nothing a peer sends reaches the service's threads.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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

// Resolves the socket directory and makes sure it is private: created 0700 when missing,
// refused when it is not a directory owned by us without group/other access.
bool prepare_dir(char* dir, size_t cap) {
  socket_dir_for(g_cold.config.socket_dir, getenv("XDG_RUNTIME_DIR"), static_cast<unsigned>(geteuid()), dir, cap);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    log(Level::kWarn, "no control socket: cannot create %s: %s", dir, strerror(errno));
    return false;
  }
  struct stat st{};
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    log(Level::kWarn, "no control socket: %s is not a directory", dir);
    return false;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    log(Level::kWarn, "no control socket: %s must be owned by uid %u with mode 0700 (is uid %u, mode %03o)",
        dir, static_cast<unsigned>(geteuid()), static_cast<unsigned>(st.st_uid),
        static_cast<unsigned>(st.st_mode & 0777));
    return false;
  }
  return true;
}

bool open_socket() {
  char dir[kPathMax];
  if (!prepare_dir(dir, sizeof dir)) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%d.sock", dir, static_cast<int>(getpid()));
  if (n < 0 || static_cast<size_t>(n) >= sizeof addr.sun_path) {
    log(Level::kWarn, "no control socket: path %s/%d.sock is too long", dir, static_cast<int>(getpid()));
    return false;
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  unlink(addr.sun_path);  // a stale socket of an earlier process with our pid
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || chmod(addr.sun_path, 0600) != 0 ||
      listen(fd, kBacklog) != 0) {
    log(Level::kWarn, "no control socket: %s: %s", addr.sun_path, strerror(errno));
    close(fd);
    return false;
  }
  snprintf(g_cold.socket_path, sizeof g_cold.socket_path, "%s", addr.sun_path);
  g_cold.listen_fd = fd;
  return true;
}

void accept_burst(int64_t now_ms) {
  for (int i = 0; i < kAcceptBurst; ++i) {
    const int c = accept4(g_cold.listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    const OwnedFd peer = adopt(c);
    if (peer.valid()) peers_add(peer, now_ms);
  }
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
    const int64_t wake = std::min({next_tick, leaks_next_due_ms(), peers_expire(now)});
    const bool listening = g_cold.listen_fd >= 0;
    int n = 0;
    if (listening) fds[n++] = {g_cold.listen_fd, POLLIN, 0};
    const int peers = peers_poll_set(fds + n);
    const int timeout = static_cast<int>(std::clamp<int64_t>(wake - now, 0, 1000));
    if (poll(fds, static_cast<nfds_t>(n + peers), timeout) <= 0) continue;
    now = monotonic_ms();
    // Peers first: accepting may evict some, and their poll results must not reach a newcomer.
    peers_after_poll(fds + n, peers, now);
    if (listening && (fds[0].revents & POLLIN)) accept_burst(now);
  }
  return nullptr;
}

}  // namespace

bool start_control_thread() {
  g_cold.socket_ok = open_socket();
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
  if (g_cold.listen_fd >= 0) close(g_cold.listen_fd);  // the child's copy; the file stays the parent's
  g_cold.listen_fd = -1;
  g_cold.socket_path[0] = '\0';
  peers_fork_child();
}

void close_socket_at_exit() {
  if (g_cold.listen_fd >= 0 && getpid() == g_cold.pid) {
    unlink(g_cold.socket_path);
    g_cold.socket_path[0] = '\0';
  }
}

}  // namespace rsr::cold
