// The control-socket client against a fake server: framing both ways, and one clear error (with
// the right exit code) for every way a peer can fail.
#include "client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "errors.h"
#include "fake_server.h"

namespace {

using rsr::ctl::Client;
using rsr::ctl::CtlError;
using rsr::ctl::Json;
using rsrtest::FakeServer;
using ::testing::HasSubstr;

class ClientTest : public ::testing::Test {
 protected:
  std::string path() const { return dir_.path() + "/42.sock"; }

  // Expects `fn` to throw a CtlError with `code` whose message contains `text`.
  template <class Fn>
  static CtlError expect_error(Fn fn, int code, const std::string& text) {
    try {
      fn();
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_THAT(e.what(), HasSubstr(text));
      return e;
    }
    ADD_FAILURE() << "no CtlError thrown";
    return CtlError(rsr::ctl::kExitOk, "");
  }

  rsrtest::TempDir dir_;
};

TEST_F(ClientTest, SendsOneFrameAndParsesTheReply) {
  FakeServer server(path(), [](const std::string&) {
    return rsrtest::reply(R"({"ok":true,"pid":42,"service":"svc","b":1,"a":2})");
  });
  const Json reply = Client(path()).request(Json{{"cmd", "summary"}, {"top", 5}});
  EXPECT_EQ(reply["pid"], 42);
  EXPECT_EQ(reply["service"], "svc");
  // Member order is the server's (text output follows it).
  EXPECT_EQ(reply.begin().key(), "ok");
  EXPECT_EQ(std::next(reply.begin(), 3).key(), "b");
  ASSERT_EQ(server.requests().size(), 1u);
  const Json request = Json::parse(server.requests()[0]);
  EXPECT_EQ(request["cmd"], "summary");
  EXPECT_EQ(request["top"], 5);
}

TEST_F(ClientTest, ErrorFrameIsARefusalWithTheServersMessage) {
  FakeServer server(path(), [](const std::string&) {
    return rsrtest::frame(rsr::proto::Kind::kError,
                          R"({"ok":false,"error":"unknown command 'bogus'"})");
  });
  expect_error([&] { Client(path()).request("bogus"); }, rsr::ctl::kExitConnection,
               "the process refused 'bogus': unknown command 'bogus'");
}

TEST_F(ClientTest, OkFalseInAResponseFrameIsARefusalToo) {
  FakeServer server(path(), [](const std::string&) {
    return rsrtest::reply(R"({"ok":false,"error":"not permitted"})");
  });
  expect_error([&] { Client(path()).request("status"); }, rsr::ctl::kExitConnection,
               "not permitted");
}

TEST_F(ClientTest, ClosedWithoutAnswer) {
  FakeServer server(path(), [](const std::string&) { return std::string(); });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection,
               "closed the connection without answering 'hello'");
}

TEST_F(ClientTest, TruncatedPayload) {
  FakeServer server(path(), [](const std::string&) {
    std::string f = rsrtest::reply(R"({"ok":true,"pid":42})");
    return f.substr(0, f.size() - 3);
  });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection,
               "truncated reply");
}

TEST_F(ClientTest, BadMagic) {
  FakeServer server(
      path(), [](const std::string&) { return std::string("HTTP/1.1 400 Bad Request\r\n\r\n"); });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection, "bad magic");
}

TEST_F(ClientTest, ShortHeader) {
  FakeServer server(path(), [](const std::string&) { return std::string("RSRM"); });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection,
               "truncated frame header");
}

TEST_F(ClientTest, InvalidJson) {
  FakeServer server(path(), [](const std::string&) { return rsrtest::reply("{\"ok\":tru"); });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection,
               "not valid JSON");
}

TEST_F(ClientTest, NotAnObject) {
  FakeServer server(path(), [](const std::string&) { return rsrtest::reply("[1,2]"); });
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitConnection,
               "not a JSON object");
}

TEST_F(ClientTest, TimesOutWhenTheProcessDoesNotAnswer) {
  FakeServer server(path(), [](const std::string&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    return rsrtest::reply(R"({"ok":true})");
  });
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { Client(path(), std::chrono::milliseconds(150)).request("hello"); },
               rsr::ctl::kExitConnection, "timed out");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(550));
}

TEST_F(ClientTest, MissingSocketIsNotFound) {
  expect_error([&] { Client(path()).request("hello"); }, rsr::ctl::kExitNotFound,
               "no socket " + path());
}

TEST_F(ClientTest, RefusedConnectionIsMarkedStale) {
  // A socket file nobody listens on: what a killed process leaves behind.
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path().c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
  const CtlError e = expect_error([&] { Client(path()).request("hello"); },
                                  rsr::ctl::kExitConnection, "connection refused on " + path());
  EXPECT_TRUE(e.stale());
}

}  // namespace
