#include "client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "errors.h"
#include "format.h"
#include "json_limits.h"
#include "protocol.h"

namespace rsr::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// Replies are untrusted. The largest the library sends (memory-summary --top 1000 with 256
// frames a site) is a few MiB with some ten thousand values, nested 6 deep.
constexpr uint32_t kMaxReplyBytes = 64u << 20;
constexpr size_t kMaxReplyDepth = 64;
constexpr size_t kMaxReplyValues = 2'000'000;
constexpr size_t kReadPiece = 1 << 20;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text(int err) { return std::strerror(err); }

// Milliseconds left before `deadline`, for poll(); 0 once it has passed.
int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

void wait_ready(int fd, short events, Clock::time_point deadline, const std::string& path,
                const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return;
    if (n == 0)
      throw CtlError(kExitConnection, "timed out " + std::string(what) + " " + path +
                                          " (the process did not answer in time)");
    if (errno != EINTR)
      throw CtlError(kExitConnection, "poll on " + path + " failed: " + errno_text(errno));
  }
}

int connect_socket(const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw CtlError(kExitUsage, "socket path too long (" + std::to_string(path.size()) +
                                   " bytes, at most " + std::to_string(sizeof addr.sun_path - 1) +
                                   "): " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw CtlError(kExitConnection, "cannot create a socket: " + errno_text(errno));
  for (;;) {
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int err = errno;
    if (err == EINTR) continue;
    // A full listen backlog: the process is busy, not gone; try again until the deadline.
    if (err == EAGAIN && remaining_ms(deadline) > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    close(fd);
    if (err == ENOENT)
      throw CtlError(kExitNotFound, "no socket " + path + " (the process has exited)");
    if (err == ECONNREFUSED)
      throw CtlError(kExitConnection,
                     "connection refused on " + path +
                         " (stale socket: its process is gone or no longer listening)",
                     /*stale=*/true);
    if (err == EAGAIN)
      throw CtlError(kExitConnection, "timed out connecting to " + path + " (process busy)");
    throw CtlError(kExitConnection, "cannot connect to " + path + ": " + errno_text(err));
  }
}

void write_all(int fd, const uint8_t* data, size_t n, Clock::time_point deadline,
               const std::string& path) {
  while (n > 0) {
    wait_ready(fd, POLLOUT, deadline, path, "writing to");
    const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw CtlError(kExitConnection,
                     "cannot send the request to " + path + ": " + errno_text(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

// Reads exactly `n` bytes; returns how many arrived before the peer closed.
size_t read_all(int fd, uint8_t* data, size_t n, Clock::time_point deadline,
                const std::string& path) {
  size_t got = 0;
  while (got < n) {
    wait_ready(fd, POLLIN, deadline, path, "waiting for a reply from");
    const ssize_t r = recv(fd, data + got, n - got, 0);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw CtlError(kExitConnection,
                     "cannot read the reply from " + path + ": " + errno_text(errno));
    }
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

Client::Client(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)), timeout_(timeout) {}

Json Client::request(const Json& request) const {
  const std::string cmd = request.value("cmd", std::string("?"));
  const std::string payload = request.dump();
  if (payload.size() > proto::kMaxRequestBytes)
    throw CtlError(kExitUsage, "request '" + cmd + "' is too large (" +
                                   std::to_string(payload.size()) + " bytes)");
  const Clock::time_point deadline = Clock::now() + timeout_;
  Fd fd(connect_socket(path_, deadline));

  uint8_t header[proto::kHeaderBytes];
  proto::encode_header(proto::Kind::kRequest, static_cast<uint32_t>(payload.size()), header);
  write_all(fd.get(), header, sizeof header, deadline, path_);
  write_all(fd.get(), reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), deadline,
            path_);

  const size_t got = read_all(fd.get(), header, sizeof header, deadline, path_);
  if (got == 0)
    throw CtlError(kExitConnection, "the process behind " + path_ +
                                        " closed the connection without answering '" + cmd + "'");
  proto::FrameHeader frame;
  const proto::DecodeStatus status = proto::decode_header(header, got, UINT32_MAX, &frame);
  if (status != proto::DecodeStatus::kOk)
    throw CtlError(kExitConnection, "bad reply from " + path_ + ": " + proto::describe(status));
  if (frame.kind == proto::Kind::kRequest)
    throw CtlError(kExitConnection, "bad reply from " + path_ + ": a request frame");
  if (frame.length > kMaxReplyBytes)
    throw CtlError(kExitConnection,
                   "bad reply from " + path_ + ": it declares " +
                       human_bytes(static_cast<double>(frame.length)) + ", more than the " +
                       human_bytes(kMaxReplyBytes) +
                       " rsrmemctl accepts (no reply of the library is larger than a few MiB)");

  // Grown as the bytes arrive, a piece at a time: a peer that declares a large frame and sends
  // little costs little.
  std::string body;
  while (body.size() < frame.length) {
    const size_t before = body.size();
    const size_t want = std::min<size_t>(frame.length - before, kReadPiece);
    body.resize(before + want);
    const size_t n = read_all(fd.get(), reinterpret_cast<uint8_t*>(body.data()) + before, want,
                              deadline, path_);
    body.resize(before + n);
    if (n < want)
      throw CtlError(kExitConnection, "truncated reply from " + path_ + ": " +
                                          std::to_string(body.size()) + " of " +
                                          std::to_string(frame.length) + " bytes");
  }

  // nlohmann builds the whole tree and prints it recursively: a reply nested a million deep
  // or made of millions of empty values is refused before it is parsed.
  const std::string shape = json_limits_problem(body, kMaxReplyDepth, kMaxReplyValues);
  if (!shape.empty())
    throw CtlError(kExitConnection, "bad reply from " + path_ + ": " + shape +
                                        " (no reply of the library does)");
  Json reply;
  try {
    reply = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw CtlError(kExitConnection, "reply from " + path_ + " is not valid JSON: " + e.what());
  }
  if (!reply.is_object())
    throw CtlError(kExitConnection, "reply from " + path_ + " is not a JSON object");

  // The frame kind decides; an explicit "ok": false in a response frame is a refusal too.
  const bool said_no = reply.contains("ok") && reply["ok"] == false;
  if (frame.kind == proto::Kind::kError || said_no) {
    std::string why = "(no message)";
    if (reply.contains("error") && reply["error"].is_string()) why = reply["error"];
    throw CtlError(kExitConnection, "the process refused '" + cmd + "': " + why);
  }
  return reply;
}

}  // namespace rsr::ctl
