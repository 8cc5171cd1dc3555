// The control socket's connections (see peers.h). Runs on the control thread with the guard
// held; a peer can only ever cost this thread time, never the service's threads.
#include "peers.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../../common/json.h"
#include "../../common/protocol.h"
#include "handlers.h"
#include "heap.h"
#include "private_libs.h"
#include "state.h"

namespace rsr::cold {
namespace {

enum class Phase : uint8_t { kFree, kHeader, kBody, kReply };

struct Peer {
  OwnedFd fd;
  Phase phase = Phase::kFree;
  bool full_access = false;  // the owner or root; RSR_ALLOWED_UIDS peers may only query
  bool denied = false;       // no uid of those: its request is read (and dropped), then refused
  unsigned uid = 0;
  int64_t since_ms = 0;     // accepted at
  uint64_t order = 0;       // accepted as the nth (eviction takes the oldest: lowest order)
  int64_t deadline_ms = 0;  // of the current phase
  uint8_t header[proto::kHeaderBytes]{};
  uint32_t length = 0;  // of the request body
  size_t got = 0;       // bytes of the header, then of the body, read so far
  char* body = nullptr;  // private heap, `length` bytes
  String* reply = nullptr;  // private heap
  uint8_t reply_header[proto::kHeaderBytes]{};
  size_t sent = 0;  // bytes of reply_header + reply written so far
};

Peer g_peers[kMaxPeers];
uint64_t g_accepted = 0;  // peers accepted so far: the next one's order
int g_polled[kMaxPeers];  // slot of each pollfd peers_poll_set() filled
size_t g_pending_reply_bytes = 0;

// Commands an RSR_ALLOWED_UIDS peer may send: they read, and change nothing a later reader
// would see (update_metrics resets the growth baseline; profiling writes files as the service).
constexpr const char* kQueries[] = {"hello", "status", "health", "summary", "heap_profile", "metrics",
                                     "check_leaks"};

// A bounded buffer on the stack for refusals: they never touch the private heap.
struct StackBuffer {
  char data[512];
  size_t used = 0;
  void append(const char* p, size_t n) {
    if (n > sizeof data - used) n = sizeof data - used;
    std::memcpy(data + used, p, n);
    used += n;
  }
};

// Frees what the peer holds on the private heap, under the mutex (a fork takes it, so the
// child never sees a pointer to a block being freed).
void free_buffers(Peer& p) {
  if (!p.body && !p.reply) return;
  pthread_mutex_lock(&g_cold.mutex);
  heap_free(p.body);
  p.body = nullptr;
  if (p.reply) g_pending_reply_bytes -= p.reply->size();
  heap_delete(p.reply);
  p.reply = nullptr;
  pthread_mutex_unlock(&g_cold.mutex);
}

// Closes the connection if its descriptor is still ours (else only forgets the number).
void finish(Peer& p) {
  release(p.fd);
  free_buffers(p);
  p.phase = Phase::kFree;
}

// One non-blocking attempt to send an error frame, then the connection is closed. The peer has
// received nothing before, so the small frame fits the empty socket buffer.
void refuse(Peer& p, const char* message) {
  if (still_ours(p.fd)) {
    StackBuffer body;
    json::JsonWriter<StackBuffer> w(body);
    w.begin_object().field("ok", false).field("error", message).end_object();
    uint8_t header[proto::kHeaderBytes];
    proto::encode_header(proto::Kind::kError, static_cast<uint32_t>(body.used), header);
    iovec iov[2] = {{header, sizeof header}, {body.data, body.used}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    (void)sendmsg(p.fd.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  finish(p);
}

bool listed_uid(unsigned uid) {
  const char* s = g_cold.config.allowed_uids;  // comma-separated, validated by parse_config
  while (*s) {
    char* end = nullptr;
    const unsigned long u = strtoul(s, &end, 10);
    if (end == s) break;
    if (u == uid) return true;
    s = end;
    while (*s == ',' || *s == ' ') ++s;
  }
  return false;
}

bool may_query_only(const char* cmd) {
  for (const char* q : kQueries)
    if (std::strcmp(cmd, q) == 0) return true;
  return false;
}

void on_writable(Peer& p);

void refuse_uid(Peer& p) {
  char msg[192];
  snprintf(msg, sizeof msg,
           "permission denied: uid %u may not use this socket (the owner uid %u, root and the uids in "
           "RSR_ALLOWED_UIDS may)",
           p.uid, static_cast<unsigned>(geteuid()));
  refuse(p, msg);
}

// The request is complete: answer it (or refuse it) and start writing.
void answer(Peer& p, int64_t now_ms) {
  if (p.denied) return refuse_uid(p);
  const std::string_view body(p.body, p.length);
  if (!json::json_validate(body) || json::json_get(body, "cmd").type != json::Type::kString) {
    refuse(p, "malformed request: expected a JSON object with a \"cmd\" string");
    return;
  }
  char cmd[64] = "";
  if (!p.full_access && (!json::json_string(json::json_get(body, "cmd"), cmd, sizeof cmd) || !may_query_only(cmd))) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "permission denied: uid %u (RSR_ALLOWED_UIDS) may only query (hello, status, health, summary, heap_profile, metrics, "
             "check_leaks), not \"%s\"",
             p.uid, cmd);
    refuse(p, msg);
    return;
  }
  proto::Kind kind = proto::Kind::kResponse;
  pthread_mutex_lock(&g_cold.mutex);
  try {
    p.reply = heap_new<String>();
    kind = handle_request(body, *p.reply);
  } catch (...) {  // the private heap ran out: answer, never take the service down
    if (p.reply) p.reply->clear();
  }
  heap_free(p.body);
  p.body = nullptr;
  if (p.reply && p.reply->empty()) {
    heap_delete(p.reply);
    p.reply = nullptr;
  }
  if (p.reply) g_pending_reply_bytes += p.reply->size();
  pthread_mutex_unlock(&g_cold.mutex);
  if (!p.reply) {
    refuse(p, "internal error while answering (out of memory)");
    return;
  }
  proto::encode_header(kind, static_cast<uint32_t>(p.reply->size()), p.reply_header);
  p.phase = Phase::kReply;
  p.sent = 0;
  p.deadline_ms = now_ms + kReplyMs;
  on_writable(p);
  // Replies nobody reads are bounded together: the oldest such peer other than this one goes.
  while (p.phase == Phase::kReply && g_pending_reply_bytes > kMaxPendingReplyBytes) {
    Peer* oldest = nullptr;
    for (Peer& q : g_peers)
      if (&q != &p && q.phase == Phase::kReply && (!oldest || q.order < oldest->order)) oldest = &q;
    if (!oldest) break;
    finish(*oldest);
  }
}

// Reads what has arrived; moves from header to body to the answer.
void on_readable(Peer& p, int64_t now_ms) {
  for (;;) {
    if (!still_ours(p.fd)) {  // closed or replaced by the program: not ours to read, nor to close
      forget(p.fd);
      finish(p);
      return;
    }
    const bool in_header = p.phase == Phase::kHeader;
    uint8_t scratch[4096];  // where a denied peer's request goes
    uint8_t* to = in_header ? p.header + p.got : p.body ? reinterpret_cast<uint8_t*>(p.body) + p.got : scratch;
    size_t want = (in_header ? sizeof p.header : p.length) - p.got;
    if (to == scratch && want > sizeof scratch) want = sizeof scratch;
    const ssize_t k = recv(p.fd.fd, to, want, MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (k <= 0) {  // the peer left, or the connection broke
      finish(p);
      return;
    }
    p.got += static_cast<size_t>(k);
    if (in_header && p.got == sizeof p.header) {
      proto::FrameHeader h;
      const proto::DecodeStatus st = proto::decode_header(p.header, sizeof p.header, proto::kMaxRequestBytes, &h);
      if (st != proto::DecodeStatus::kOk) return refuse(p, proto::describe(st));
      if (h.kind != proto::Kind::kRequest) return refuse(p, "expected a request frame");
      if (p.denied) {
        if (h.length == 0) return refuse_uid(p);
      } else {
        if (h.length == 0) return refuse(p, "malformed request: expected a JSON object with a \"cmd\" string");
        pthread_mutex_lock(&g_cold.mutex);
        p.body = static_cast<char*>(heap_alloc(h.length));
        pthread_mutex_unlock(&g_cold.mutex);
        if (!p.body) return refuse(p, "internal error while reading (out of memory)");
      }
      p.length = h.length;
      p.got = 0;
      p.phase = Phase::kBody;
    } else if (!in_header && p.got == p.length) {
      answer(p, now_ms);
      return;
    }
  }
}

// Writes what the socket takes of the reply; closes the connection once it is all out.
void on_writable(Peer& p) {
  while (p.phase == Phase::kReply) {
    if (!still_ours(p.fd)) {
      forget(p.fd);
      finish(p);
      return;
    }
    iovec iov[2];
    int n = 0;
    const size_t head = sizeof p.reply_header;
    if (p.sent < head) iov[n++] = {p.reply_header + p.sent, head - p.sent};
    const size_t body_sent = p.sent > head ? p.sent - head : 0;
    iov[n++] = {p.reply->data() + body_sent, p.reply->size() - body_sent};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = static_cast<size_t>(n);
    const ssize_t k = sendmsg(p.fd.fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (k < 0) {  // the peer left before its reply (EPIPE, never SIGPIPE)
      finish(p);
      return;
    }
    p.sent += static_cast<size_t>(k);
    if (p.sent == head + p.reply->size()) finish(p);
  }
}

// A peer still reading may be closed for a newcomer once its grace is over.
bool evictable(const Peer& p, int64_t now_ms) {
  return p.phase != Phase::kReply && now_ms >= p.since_ms + kEvictGraceMs;
}

// The slot a new peer would take now: a free one, else the oldest still reading (never served
// yet) whose grace is over, else, when none is reading, the oldest writing a reply; null while
// the only peers that could go are reading and in their grace.
Peer* slot_for_newcomer(int64_t now_ms) {
  Peer* reading = nullptr;
  Peer* writing = nullptr;
  bool young = false;
  for (Peer& p : g_peers) {
    if (p.phase == Phase::kFree) return &p;
    if (p.phase == Phase::kReply) {
      if (!writing || p.order < writing->order) writing = &p;
    } else if (!evictable(p, now_ms)) {
      young = true;
    } else if (!reading || p.order < reading->order) {
      reading = &p;
    }
  }
  return reading ? reading : young ? nullptr : writing;
}

// The slot for a new peer (peers_room_at(now_ms) <= now_ms), emptied.
Peer& make_room(int64_t now_ms) {
  Peer& p = *slot_for_newcomer(now_ms);
  if (p.phase == Phase::kReply) finish(p);
  else if (p.phase != Phase::kFree)
    refuse(p, "too many connections: this one, the oldest without a complete request, was closed");
  return p;
}

}  // namespace

void peers_add(OwnedFd fd, int64_t now_ms) {
  Peer& p = make_room(now_ms);
  p = Peer{};
  p.fd = fd;
  p.since_ms = now_ms;
  p.order = g_accepted++;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(p.fd.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    finish(p);
    return;
  }
  p.uid = cred.uid;
  p.full_access = cred.uid == 0 || cred.uid == geteuid();
  // A refusal sent at once would meet a client still writing its request (EPIPE, and no
  // message); the request is taken in first, into a scratch buffer, then refused.
  p.denied = !p.full_access && !listed_uid(cred.uid);
  p.phase = Phase::kHeader;
  p.deadline_ms = now_ms + kRequestMs;
  on_readable(p, now_ms);  // a client sends its request with the connect: often already here
}

int peers_poll_set(pollfd* fds) {
  int n = 0;
  for (int i = 0; i < kMaxPeers; ++i) {
    Peer& p = g_peers[i];
    if (p.phase == Phase::kFree) continue;
    if (!still_ours(p.fd)) {
      forget(p.fd);
      finish(p);
      continue;
    }
    fds[n] = {p.fd.fd, static_cast<short>(p.phase == Phase::kReply ? POLLOUT : POLLIN), 0};
    g_polled[n++] = i;
  }
  return n;
}

void peers_after_poll(const pollfd* fds, int n, int64_t now_ms) {
  for (int i = 0; i < n; ++i) {
    Peer& p = g_peers[g_polled[i]];
    if (p.phase == Phase::kFree || fds[i].revents == 0) continue;
    if (fds[i].revents & POLLNVAL) {  // the number was closed under us
      forget(p.fd);
      finish(p);
    } else if (p.phase == Phase::kReply) {
      on_writable(p);
    } else {
      on_readable(p, now_ms);
    }
  }
}

int64_t peers_room_at(int64_t now_ms) {
  if (slot_for_newcomer(now_ms)) return now_ms;
  int64_t at = INT64_MAX;  // every reading peer is in its grace: the first to leave it
  for (const Peer& p : g_peers)
    if (p.phase != Phase::kFree && p.phase != Phase::kReply) at = std::min(at, p.since_ms + kEvictGraceMs);
  return at;
}

int64_t peers_expire(int64_t now_ms) {
  int64_t next = INT64_MAX;
  for (Peer& p : g_peers) {
    if (p.phase == Phase::kFree) continue;
    if (now_ms >= p.deadline_ms) {
      if (p.phase == Phase::kReply) finish(p);
      else refuse(p, "no complete request within 2 s");
      continue;
    }
    if (p.deadline_ms < next) next = p.deadline_ms;
  }
  return next;
}

void peers_fork_child() {
  for (Peer& p : g_peers) {  // whatever phase the fork found a slot in
    release(p.fd);
    heap_free(p.body);
    heap_delete(p.reply);
    p = Peer{};
  }
  g_pending_reply_bytes = 0;
}

}  // namespace rsr::cold
