// The control socket: one Unix stream socket per process, served by one background thread that
// also runs the once-a-second tick. A peer can only ever cost this thread time: requests are
// bounded in size and time, and nothing a peer sends reaches the service's threads.
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

#include "../../common/json.h"
#include "../../common/protocol.h"
#include "handlers.h"
#include "leaks.h"
#include "log.h"
#include "proc.h"
#include "state.h"

namespace rsr::cold {
namespace {

constexpr int kRequestTimeoutMs = 2000;
constexpr int kReplyTimeoutMs = 5000;

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
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  unlink(addr.sun_path);  // a stale socket of an earlier process with our pid
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || chmod(addr.sun_path, 0600) != 0 ||
      listen(fd, 16) != 0) {
    log(Level::kWarn, "no control socket: %s: %s", addr.sun_path, strerror(errno));
    close(fd);
    return false;
  }
  snprintf(g_cold.socket_path, sizeof g_cold.socket_path, "%s", addr.sun_path);
  g_cold.listen_fd = fd;
  return true;
}

bool peer_allowed(int fd, unsigned* uid_out) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  *uid_out = cred.uid;
  if (cred.uid == 0 || cred.uid == geteuid()) return true;
  // RSR_ALLOWED_UIDS: comma-separated extra uids.
  const char* p = g_cold.config.allowed_uids;
  while (*p) {
    char* end = nullptr;
    const unsigned long u = strtoul(p, &end, 10);
    if (end == p) break;
    if (u == cred.uid) return true;
    p = end;
    while (*p == ',' || *p == ' ') ++p;
  }
  return false;
}

int64_t remaining(int64_t deadline) {
  const int64_t r = deadline - monotonic_ms();
  return r > 0 ? r : 0;
}

// Reads exactly `n` bytes before `deadline` (monotonic ms).
bool read_full(int fd, char* buf, size_t n, int64_t deadline) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(remaining(deadline)));
    if (r <= 0) return false;
    const ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k <= 0) {
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return false;
    }
    got += static_cast<size_t>(k);
  }
  return true;
}

bool write_full(int fd, const char* buf, size_t n, int64_t deadline) {
  size_t sent = 0;
  while (sent < n) {
    pollfd p{fd, POLLOUT, 0};
    const int r = poll(&p, 1, static_cast<int>(remaining(deadline)));
    if (r <= 0) return false;
    const ssize_t k = send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (k <= 0) {
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return false;
    }
    sent += static_cast<size_t>(k);
  }
  return true;
}

// A bounded buffer on the stack: refusals and requests never touch the private heap outside
// the state mutex, so a fork (which takes that mutex) never sees the heap mid-update.
struct StackBuffer {
  char data[512];
  size_t used = 0;
  void append(const char* p, size_t n) {
    if (n > sizeof data - used) n = sizeof data - used;
    std::memcpy(data + used, p, n);
    used += n;
  }
};

void send_frame(int fd, proto::Kind kind, const char* body, size_t n) {
  uint8_t header[proto::kHeaderBytes];
  proto::encode_header(kind, static_cast<uint32_t>(n), header);
  const int64_t deadline = monotonic_ms() + kReplyTimeoutMs;
  if (write_full(fd, reinterpret_cast<const char*>(header), sizeof header, deadline))
    write_full(fd, body, n, deadline);
}

void refuse(int fd, const char* message) {
  StackBuffer body;
  json::JsonWriter<StackBuffer> w(body);
  w.begin_object().field("ok", false).field("error", message).end_object();
  send_frame(fd, proto::Kind::kError, body.data, body.used);
}

void serve(int fd) {
  unsigned uid = 0;
  if (!peer_allowed(fd, &uid)) {
    char msg[128];
    snprintf(msg, sizeof msg, "permission denied: uid %u may not use this socket", uid);
    refuse(fd, msg);
    return;
  }
  const int64_t deadline = monotonic_ms() + kRequestTimeoutMs;
  uint8_t header[proto::kHeaderBytes];
  if (!read_full(fd, reinterpret_cast<char*>(header), sizeof header, deadline)) return;
  proto::FrameHeader h;
  const proto::DecodeStatus st = proto::decode_header(header, sizeof header, proto::kMaxRequestBytes, &h);
  if (st != proto::DecodeStatus::kOk) {
    refuse(fd, proto::describe(st));
    return;
  }
  if (h.kind != proto::Kind::kRequest) {
    refuse(fd, "expected a request frame");
    return;
  }
  static_assert(proto::kMaxRequestBytes <= 64 * 1024, "requests are read onto the stack");
  char request[proto::kMaxRequestBytes];
  if (!read_full(fd, request, h.length, deadline)) return;
  const std::string_view body(request, h.length);
  if (!json::json_validate(body) || json::json_get(body, "cmd").type != json::Type::kString) {
    refuse(fd, "malformed request: expected a JSON object with a \"cmd\" string");
    return;
  }
  pthread_mutex_lock(&g_cold.mutex);
  String* out = nullptr;
  proto::Kind kind = proto::Kind::kResponse;
  try {
    out = heap_new<String>();
    kind = handle_request(body, *out);
  } catch (...) {  // the private heap ran out: answer, never take the service down
    if (out) out->clear();
  }
  pthread_mutex_unlock(&g_cold.mutex);
  if (out && !out->empty()) send_frame(fd, kind, out->data(), out->size());
  else refuse(fd, "internal error while answering (out of memory)");
  // Released under the mutex, like every use of the private heap.
  pthread_mutex_lock(&g_cold.mutex);
  heap_delete(out);
  pthread_mutex_unlock(&g_cold.mutex);
}

void* control_main(void*) {
  hot::guard_enter();  // this thread's incidental libc allocations are not the service's
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals belong to the service's threads
  int64_t next_tick = monotonic_ms();
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
    const int64_t wake = std::min(next_tick, leaks_next_due_ms());
    const int timeout = static_cast<int>(std::clamp<int64_t>(wake - now, 0, 1000));
    if (g_cold.listen_fd < 0) {
      usleep(static_cast<useconds_t>(timeout) * 1000);
      continue;
    }
    pollfd p{g_cold.listen_fd, POLLIN, 0};
    const int r = poll(&p, 1, timeout);
    if (r <= 0) continue;
    const int fd = accept4(g_cold.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    close(fd);
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

void close_socket_at_exit() {
  if (g_cold.listen_fd >= 0 && getpid() == g_cold.pid) {
    unlink(g_cold.socket_path);
    g_cold.socket_path[0] = '\0';
  }
}

}  // namespace rsr::cold
