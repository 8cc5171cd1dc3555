// HTTP on 127.0.0.1 for tests of rsrmemctl's exporter and Pushgateway client: a free port, a
// plain GET, and a listener that records each request and answers with a fixed status.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rsrtest {

// A loopback port nobody listens on right now (bound, read back, released).
inline int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot bind a loopback port");
  close(fd);
  return ntohs(addr.sin_port);
}

struct HttpReply {
  int status = 0;  // 0: no connection or no HTTP answer
  std::string body;
};

// GET http://127.0.0.1:<port><path> (HTTP/1.0: the server closes after the answer).
inline HttpReply http_get(int port, const std::string& path) {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return reply;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string data;
  char buf[65536];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) data.append(buf, static_cast<size_t>(n));
  close(fd);
  if (data.compare(0, 5, "HTTP/") != 0) return reply;
  reply.status = std::atoi(data.c_str() + data.find(' ') + 1);
  const size_t body = data.find("\r\n\r\n");
  if (body != std::string::npos) reply.body = data.substr(body + 4);
  return reply;
}

// Listens on 127.0.0.1:<ephemeral port> in a thread; records each request's method, path,
// content type and body and answers it with `status` and `answer` as the reply's body.
class RecordingHttp {
 public:
  struct Request {
    std::string method, path, content_type, body;
  };

  explicit RecordingHttp(int status = 200, std::string answer = "") : status_(status), answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~RecordingHttp() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() {
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
      record(c);
      close(c);
    }
  }

  // Bytes from `c` appended to `data` until it holds `want` bytes (npos: the end of the headers),
  // the peer closes, or 5 s pass.
  static void read_until(int c, std::string& data, size_t want) {
    char buf[4096];
    while (want == std::string::npos ? data.find("\r\n\r\n") == std::string::npos
                                     : data.size() < want) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return;
      const ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
  }

  static std::string header(const std::string& head, const std::string& lower_name) {
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const size_t at = lower.find("\r\n" + lower_name + ":");
    if (at == std::string::npos) return "";
    const size_t from = head.find_first_not_of(' ', at + lower_name.size() + 3);
    return head.substr(from, head.find("\r\n", from) - from);
  }

  void record(int c) {
    std::string data;
    read_until(c, data, std::string::npos);
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string::npos) return;
    const std::string head = data.substr(0, end);
    Request r;
    const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    r.method = head.substr(0, sp1);
    r.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    r.content_type = header(head, "content-type");
    if (header(head, "expect") == "100-continue") send_all(c, "HTTP/1.1 100 Continue\r\n\r\n");
    const std::string length = header(head, "content-length");
    r.body = data.substr(end + 4);
    read_until(c, r.body, length.empty() ? 0 : std::stoul(length));
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(r);
    }
    send_all(c, "HTTP/1.1 " + std::to_string(status_) + " Test\r\nContent-Length: " +
                    std::to_string(answer_.size()) + "\r\nConnection: close\r\n\r\n" + answer_);
  }

  static void send_all(int c, const std::string& s) {
    size_t sent = 0;
    while (sent < s.size()) {
      const ssize_t w = send(c, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) return;
      sent += static_cast<size_t>(w);
    }
  }

  int status_;
  std::string answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
};

}  // namespace rsrtest
