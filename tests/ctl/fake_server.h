// A stand-in for librsrmem.so's control server, for tests of the client and the commands: it
// listens on a Unix socket in a thread and answers each connection with whatever the test's
// handler returns (a well-formed frame, or any bytes at all).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "protocol.h"

namespace rsrtest {

// A header and payload as the preload would send them.
inline std::string frame(rsr::proto::Kind kind, const std::string& payload) {
  uint8_t header[rsr::proto::kHeaderBytes];
  rsr::proto::encode_header(kind, static_cast<uint32_t>(payload.size()), header);
  return std::string(reinterpret_cast<char*>(header), sizeof header) + payload;
}
inline std::string reply(const std::string& json) {
  return frame(rsr::proto::Kind::kResponse, json);
}

// A private 0700 directory removed (with its contents) at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rsrctl-test-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class FakeServer {
 public:
  // Gets the request payload (empty when the peer sent no complete frame); returns the bytes to
  // send back. An empty string closes the connection without an answer.
  using Handler = std::function<std::string(const std::string& request)>;

  // Gets the connection, the request payload and a flag that turns true when the server is being
  // destroyed; answers however it likes (slowly, in pieces, never) and returns. The connection
  // is closed after it returns.
  using Conversation =
      std::function<void(int fd, const std::string& request, const std::atomic<bool>& stopping)>;

  FakeServer(std::string path, Handler handler)
      : FakeServer(std::move(path), Conversation([handler = std::move(handler)](
                                                     int c, const std::string& request,
                                                     const std::atomic<bool>&) {
          send_all(c, handler(request));
        })) {}

  FakeServer(std::string path, Conversation conversation)
      : path_(std::move(path)), conversation_(std::move(conversation)) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 8) != 0)
      throw std::runtime_error("cannot listen on " + path_ + ": " + std::strerror(errno));
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }

  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const std::string request = read_request(c);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
      }
      conversation_(c, request, stop_);
      close(c);
    }
  }

 public:
  // Sends all of `out`; false when the peer went away first.
  static bool send_all(int c, const std::string& out) {
    size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t w = send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) return false;
      sent += static_cast<size_t>(w);
    }
    return true;
  }

 private:

  static bool read_exact(int c, char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      const ssize_t r = recv(c, buf + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }

  static std::string read_request(int c) {
    uint8_t header[rsr::proto::kHeaderBytes];
    if (!read_exact(c, reinterpret_cast<char*>(header), sizeof header)) return "";
    rsr::proto::FrameHeader h;
    if (rsr::proto::decode_header(header, sizeof header, rsr::proto::kMaxRequestBytes, &h) !=
        rsr::proto::DecodeStatus::kOk)
      return "";
    std::string payload(h.length, '\0');
    if (!read_exact(c, payload.data(), payload.size())) return "";
    return payload;
  }

  std::string path_;
  Conversation conversation_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

}  // namespace rsrtest
