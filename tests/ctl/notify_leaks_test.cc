// scripts/notify-leaks as cron runs it: the real rsrmemctl (RSRMEMCTL) against a fake process
// answering check_leaks, and a webhook listening on 127.0.0.1 in this test (loopback only) that
// records what is POSTed. Covers the payload (counted with jq, and with python3 when jq is
// absent), JSON escaping, --all, exit statuses and usage errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>

#include "http_loopback.h"
#include "leak_replies.h"
#include "subprocess.h"

namespace {

using namespace rsrtest::leaks;
using rsrtest::Result;
using ::testing::HasSubstr;

// A webhook on 127.0.0.1: records every POST and answers with a fixed status.
using Webhook = rsrtest::RecordingHttp;

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
  const Result r = notify({"--webhook", hook.url() + "/hook", "--pid", std::to_string(getpid())});
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
  const Result r = notify({}, {{"RSR_LEAK_WEBHOOK_URL", hook.url() + "/hook"}});  // the only process
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(hook.requests().size(), 1u);
}

TEST_F(NotifyLeaksTest, NothingFoundIsSilentAndSendsNothing) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", leaks_reply(getpid(), {})}}));
  Webhook hook;
  const Result r = notify({"--webhook", hook.url() + "/hook", "--pid", std::to_string(getpid())});
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
  const Result r = notify({"--webhook", hook.url() + "/hook", "--pid", std::to_string(getpid())});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("could not notify the webhook"));
  EXPECT_GE(hook.requests().size(), 1u);  // tried (and retried: 500 is transient to curl)
}

TEST_F(NotifyLeaksTest, UnreachableWebhookIsFour) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"check_leaks", two_indicators(getpid())}}));
  std::string url;
  { url = Webhook().url() + "/hook"; }  // a port nobody listens on any more
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
