// scripts/notify-leaks as cron runs it: the real rsrmemctl (RSRMEMCTL) against a fake process
// answering check_leaks, and a webhook listening on 127.0.0.1 in this test (loopback only) that
// records what is POSTed. Covers the payload (counted with jq, and with python3 when jq is
// absent), JSON escaping, --all, exit statuses and usage errors.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "leak_replies.h"
#include "subprocess.h"

namespace {

using namespace rsrtest::leaks;
using rsrtest::Result;
using ::testing::HasSubstr;

// A webhook on 127.0.0.1:<ephemeral port>: answers every POST with `status` and records it.
class Webhook {
 public:
  struct Request {
    std::string method, path, content_type, body;
  };

  explicit Webhook(int status = 200) : status_(status) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 8) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error(std::string("cannot listen on 127.0.0.1: ") + strerror(errno));
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Webhook() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  // Reads from `c` until `done` says the bytes so far are enough, the peer closes, or 5 s pass.
  template <class Done>
  static void read_until(int c, std::string& data, Done done) {
    char buf[4096];
    while (!done(data)) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return;
      const ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
  }

  static std::string lower(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  }

  void serve(int c) {
    std::string data;
    read_until(c, data,
               [](const std::string& d) { return d.find("\r\n\r\n") != std::string::npos; });
    const size_t end = data.find("\r\n\r\n");
    if (end == std::string::npos) return;
    Request r;
    const std::string head = data.substr(0, end);
    std::string body = data.substr(end + 4);
    const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    r.method = head.substr(0, sp1);
    r.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t length = 0;
    bool expect_continue = false;
    size_t at = head.find("\r\n");
    while (at != std::string::npos) {
      const size_t next = head.find("\r\n", at + 2);
      const std::string line =
          head.substr(at + 2, next == std::string::npos ? next : next - at - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        const std::string name = lower(line.substr(0, colon));
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        if (name == "content-length") length = std::stoul(value);
        if (name == "content-type") r.content_type = value;
        if (name == "expect" && lower(value) == "100-continue") expect_continue = true;
      }
      at = next;
    }
    if (expect_continue) send_all(c, "HTTP/1.1 100 Continue\r\n\r\n");
    read_until(c, body, [length](const std::string& b) { return b.size() >= length; });
    r.body = body;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(r);
    }
    send_all(c, "HTTP/1.1 " + std::to_string(status_) +
                    " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  }

  static void send_all(int c, const std::string& s) {
    size_t sent = 0;
    while (sent < s.size()) {
      const ssize_t w = send(c, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) return;
      sent += static_cast<size_t>(w);
    }
  }

  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      close(c);
    }
  }

  int status_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
};

std::string host_name() {
  utsname u{};
  uname(&u);
  return u.nodename;
}

bool have(const char* tool) {
  return std::system(("command -v " + std::string(tool) + " >/dev/null 2>&1").c_str()) == 0;
}

class NotifyLeaksTest : public ::testing::Test {
 protected:
  std::string socket_for(pid_t pid) const {
    return dir_.path() + "/" + std::to_string(pid) + ".sock";
  }

  // notify-leaks with `args`; rsrmemctl finds the fake processes in this test's directory.
  Result notify(std::vector<std::string> args, rsrtest::EnvOverrides env = {}) {
    args.insert(args.begin(), script_);
    env.emplace("RSRMEMCTL", ctl_);
    env.emplace("RSR_SOCKET_DIR", dir_.path());
    env.emplace("RSR_LEAK_WEBHOOK_URL", "");
    env.emplace("no_proxy", "127.0.0.1");  // the webhook is local whatever the environment says
    env.emplace("NO_PROXY", "127.0.0.1");
    return rsrtest::run(args, env);
  }

  // A reply with the seed's two indicators, the site in rsrtest::register_session.
  Json two_indicators(pid_t pid) const {
    return leaks_reply(pid, {memory_growth("HIGH", mib(40), mib(40) * 1.253, 300),
                             site_growth("MEDIUM", mib(3.1), mib(6.8), 600, o0_site())});
  }

  std::string expected_text(pid_t pid) const {
    return "Memory leak detected on " + host_name() + ": 2 indicators (svc, pid " +
           std::to_string(pid) +
           "): [HIGH] Memory growth detected: 25.3% increase over 5 minutes; [MEDIUM] Call site "
           "growth: rsrtest::register_session (leak_fixture.cc:" +
           std::to_string(rsrtest::o0_push_line) +
           ") live memory increased by 119% (3.1 MiB -> 6.8 MiB) over 10 minutes";
  }

  rsrtest::TempDir dir_;
  std::string ctl_ = rsrtest::env_or_die("RSRMEMCTL");
  std::string script_ = rsrtest::env_or_die("NOTIFY_LEAKS");
};

TEST_F(NotifyLeaksTest, DryRunPrintsThePayload) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  const Result r = notify({"--pid", std::to_string(getpid()), "--dry-run"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(Json::parse(r.out), (Json{{"text", expected_text(getpid())}}));
}

TEST_F(NotifyLeaksTest, PostsTheSummaryToTheWebhook) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  Webhook hook;
  const Result r = notify({"--webhook", hook.url(), "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("notify-leaks: found 2 leak indicator(s); notified the webhook"));
  const std::vector<Webhook::Request> got = hook.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].path, "/hook");
  EXPECT_EQ(got[0].content_type, "application/json");
  EXPECT_EQ(Json::parse(got[0].body), (Json{{"text", expected_text(getpid())}}));
}

TEST_F(NotifyLeaksTest, WebhookFromTheEnvironment) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  Webhook hook;
  const Result r = notify({}, {{"RSR_LEAK_WEBHOOK_URL", hook.url()}});  // the only process
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(hook.requests().size(), 1u);
}

TEST_F(NotifyLeaksTest, NothingFoundIsSilentAndSendsNothing) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", leaks_reply(getpid(), {})}}));
  Webhook hook;
  const Result r = notify({"--webhook", hook.url(), "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(hook.requests().empty());
}

TEST_F(NotifyLeaksTest, WebhookErrorIsFour) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  Webhook hook(500);
  const Result r = notify({"--webhook", hook.url(), "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("could not notify the webhook"));
  EXPECT_GE(hook.requests().size(), 1u);  // tried (and retried: 500 is transient to curl)
}

TEST_F(NotifyLeaksTest, UnreachableWebhookIsFour) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  std::string url;
  { url = Webhook().url(); }  // a port nobody listens on any more
  const Result r = notify({"--webhook", url, "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.code, 4);
}

TEST_F(NotifyLeaksTest, CouldNotCheckIsFour) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             [](const std::string&) { return disabled_refusal(); });
  Result r = notify({"--pid", std::to_string(getpid()), "--dry-run"});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("RSR_LEAK_DETECTION_ENABLED"));  // rsrmemctl's own message
  EXPECT_THAT(r.err,
              HasSubstr("notify-leaks: could not check for leaks (rsrmemctl exit status 4)"));
  r = notify({"--pid", "2147480000", "--dry-run"});  // no such process
  EXPECT_EQ(r.code, 4);
}

TEST_F(NotifyLeaksTest, UsageErrorsAreTwo) {
  Result r = notify({"--pid", std::to_string(getpid())});  // neither a webhook nor --dry-run
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no webhook"));
  EXPECT_EQ(notify({"--dry-run", "--format", "text"}).code, 2);
  EXPECT_EQ(notify({"--webhook"}).code, 2);
  EXPECT_EQ(notify({"--dry-run", "--frobnicate"}).code, 2);  // rejected by rsrmemctl
  r = notify({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: notify-leaks"));
}

TEST_F(NotifyLeaksTest, AllCountsEveryProcessAndEscapesTheText) {
  const pid_t a = getpid(), b = getppid();
  Json ra = leaks_reply(
      a, {memory_growth("HIGH", mib(10), mib(20), 300), high_memory("MEDIUM", mib(100), mib(150)),
          memory_growth("LOW", mib(10), mib(13), 60)});
  ra["service"] = "api \"blue\" \\ tab\there";  // needs escaping in JSON
  Json rb = leaks_reply(b, {high_memory("CRITICAL", mib(100), mib(812))});
  rsrtest::FakeServer sa(socket_for(a), answers({{"check_leaks", ra}}));
  rsrtest::FakeServer sb(socket_for(b), answers({{"check_leaks", rb}}));
  const Result r = notify({"--all", "--dry-run"});
  EXPECT_EQ(r.code, 1) << r.err;
  const std::string text = Json::parse(r.out)["text"];
  const std::string who_a = "api \"blue\" \\ tab\there, pid " + std::to_string(a);
  const std::string who_b = "svc, pid " + std::to_string(b);
  EXPECT_THAT(text, HasSubstr(": 4 indicators ("));
  EXPECT_THAT(text, HasSubstr(a < b ? who_a + "; " + who_b : who_b + "; " + who_a));
  EXPECT_THAT(text, HasSubstr("[HIGH] Memory growth detected: 100.0% increase over 5 minutes"));
  EXPECT_THAT(text, HasSubstr(" (+1 more)"));  // the first three messages only
}

// Without jq the script reads rsrmemctl's JSON with python3, to the same payload.
TEST_F(NotifyLeaksTest, Python3WhenJqIsAbsent) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  const std::string bin = dir_.path() + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0700), 0);
  for (const char* tool : {"env", "bash", "uname", "python3", "curl"}) {
    const Result where = rsrtest::run({"/bin/sh", "-c", std::string("command -v ") + tool});
    std::string path = where.out.substr(0, where.out.find('\n'));
    if (path.empty()) {
      if (std::string(tool) == "python3") GTEST_SKIP() << "python3 is not installed";
      continue;
    }
    // A pyenv shim needs pyenv on PATH: use the system's interpreter when there is one.
    if (std::string(tool) == "python3" && access("/usr/bin/python3", X_OK) == 0)
      path = "/usr/bin/python3";
    ASSERT_EQ(symlink(path.c_str(), (bin + "/" + tool).c_str()), 0) << tool;
  }
  const Result r = notify({"--pid", std::to_string(getpid()), "--dry-run"}, {{"PATH", bin}});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(Json::parse(r.out), (Json{{"text", expected_text(getpid())}}));
}

}  // namespace
