// The control-socket client: one request frame out, one reply frame back, per connection
// (common/protocol.h defines the framing, common/protocol.md the replies).
//
// Every failure is a CtlError naming the socket: kExitNotFound when the socket file is missing,
// kExitConnection for a refused connection (marked stale), a timeout, a malformed reply, or a
// refusal by the process (an error frame, whose "error" text is quoted).
//
// A Client holds only its settings; each call opens and closes its own connection, so one Client
// may be used from any thread.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace rsr::ctl {

// Replies keep the server's member order so text output follows it (e.g. health components).
using Json = nlohmann::ordered_json;

class Client {
 public:
  explicit Client(std::string socket_path,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Sends `request` (an object with "cmd") and returns the reply object (ok == true).
  Json request(const Json& request) const;

  // Convenience: {"cmd": cmd}.
  Json request(const char* cmd) const { return request(Json{{"cmd", cmd}}); }

  const std::string& socket_path() const { return path_; }

 private:
  std::string path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace rsr::ctl
