// rsrmemctl's Prometheus commands end to end: the real binary, a real program under the real
// librsrmem.so, `serve` scraped over HTTP, and `push` / `run --push-gateway` into a real
// Pushgateway (started here on a free loopback port with a scratch persistence file, and always
// stopped). Paths come from the environment (tests/ctl/meson.build): RSRMEMCTL, RSR_PRELOAD_LIB,
// RSR_E2E_TARGET, PUSHGATEWAY, PROMTOOL.
#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "http_loopback.h"
#include "subprocess.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using rsrtest::Child;
using rsrtest::Result;

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf[0] ? buf : "localhost";
}

// Reads the child's stderr until a line holding `marker` arrives; returns that line ("" on
// timeout or end of output). What was read stays consumed.
std::string read_line_with(const Child& c, const std::string& marker, int timeout_ms = 10000) {
  std::string seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{c.err, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char ch;
    if (read(c.err, &ch, 1) != 1) return "";
    if (ch != '\n') {
      seen += ch;
      continue;
    }
    if (seen.find(marker) != std::string::npos) return seen;
    seen.clear();
  }
  return "";
}

// A Pushgateway on a free loopback port, stopped and its files removed at the end of the test.
class Pushgateway {
 public:
  explicit Pushgateway(const std::string& binary, const std::string& dir) : port_(rsrtest::free_loopback_port()) {
    child_ = rsrtest::spawn({binary, "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                             "--persistence.file=" + dir + "/pushgateway.db", "--log.level=warn"});
  }
  ~Pushgateway() {
    kill(child_.pid, SIGTERM);
    rsrtest::finish(child_);
  }
  bool ready() const {
    for (int i = 0; i < 200; ++i) {
      if (rsrtest::http_get(port_, "/-/ready").status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string metrics() const { return rsrtest::http_get(port_, "/metrics").body; }

 private:
  int port_;
  Child child_;
};

class MetricsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rsrctl-metrics-e2e-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    env_ = {{"RSR_SOCKET_DIR", dir_}, {"RSR_PRELOAD_LIB", lib_}};
  }
  void TearDown() override {
    for (Child& c : monitored_) {
      kill(c.pid, SIGTERM);
      rsrtest::finish(c);
    }
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  Result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return rsrtest::run(args, env_);
  }
  Child ctl_spawn(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return rsrtest::spawn(args, env_);
  }

  // Starts the target under `rsrmemctl run` and waits for its socket; returns its pid (0 when
  // none appeared).
  pid_t start_target() {
    std::set<std::string> before = sockets();
    monitored_.push_back(ctl_spawn({"run", "--", target_, "wait"}));
    for (int i = 0; i < 400; ++i) {
      for (const std::string& s : sockets())
        if (!before.count(s)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it allocate
          return static_cast<pid_t>(std::stol(s));
        }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return 0;
  }

  std::set<std::string> sockets() const {
    std::set<std::string> out;
    if (DIR* d = opendir(dir_.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.size() > 5 && name.compare(name.size() - 5, 5, ".sock") == 0) out.insert(name);
      }
      closedir(d);
    }
    return out;
  }

  // promtool's findings other than the two seed names the SPEC keeps.
  std::string promtool_findings(const std::string& exposition) {
    if (access(promtool_.c_str(), X_OK) != 0) return "";
    const std::string path = dir_ + "/exposition.txt";
    std::ofstream(path) << exposition;
    const Result r = rsrtest::run({"/bin/sh", "-c", promtool_ + " check metrics < '" + path + "'"});
    std::istringstream in(r.out + r.err);
    std::string out;
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line.rfind("rsr_model_instance_count ", 0) != 0 &&
          line.rfind("rsr_request_memory_usage_mb ", 0) != 0)
        out += line + "\n";
    return out;
  }

  std::string ctl_ = rsrtest::env_or_die("RSRMEMCTL");
  std::string target_ = rsrtest::env_or_die("RSR_E2E_TARGET");
  std::string lib_ = rsrtest::env_or_die("RSR_PRELOAD_LIB");
  std::string pushgateway_ = rsrtest::env_or_die("PUSHGATEWAY");
  std::string promtool_ = rsrtest::env_or_die("PROMTOOL");
  std::string dir_;
  rsrtest::EnvOverrides env_;
  std::vector<Child> monitored_;
};

TEST_F(MetricsE2eTest, MetricsPrintsTheExposition) {
  const pid_t pid = start_target();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ctl({"update-metrics"}).code, 0);
  const Result r = ctl({"metrics"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string labels =
      "{instance=\"" + hostname() + "\",job=\"ctl-e2e-target\"";
  EXPECT_THAT(r.out, AllOf(HasSubstr("rsr_memory_usage_bytes" + labels + "}"),
                           HasSubstr("rsr_heap_live_bytes" + labels + "}"),
                           HasSubstr("rsr_model_instance_count" + labels +
                                     ",site=\"leak_some_memory (e2e_target.cc:"),
                           HasSubstr("# TYPE rsr_project_hierarchy_depth histogram")));
  EXPECT_EQ(promtool_findings(r.out), "");
}

TEST_F(MetricsE2eTest, ServeAnswersScrapesUntilSigterm) {
  const pid_t pid = start_target();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ctl({"update-metrics"}).code, 0);
  Child serve = ctl_spawn({"--all", "serve", "--listen", "127.0.0.1:0"});
  const std::string line = read_line_with(serve, "serving http://127.0.0.1:");
  ASSERT_NE(line, "");
  const int port = std::atoi(line.c_str() + line.rfind(':') + 1);

  rsrtest::HttpReply reply = rsrtest::http_get(port, "/metrics");
  EXPECT_EQ(reply.status, 200);
  const std::string instance = "instance=\"" + hostname() + "\"";
  for (const char* name :
       {"rsr_memory_usage_bytes{", "rsr_memory_peak_usage_bytes{", "rsr_deletion_tracker_size{",
        "rsr_project_hierarchy_depth_bucket{", "rsr_model_instance_count{",
        "rsr_memory_leaks_detected_total{", "rsr_info{"})
    EXPECT_THAT(reply.body, HasSubstr(std::string(name) + instance)) << name;
  EXPECT_THAT(reply.body, HasSubstr("site=\"leak_some_memory (e2e_target.cc:"));
  EXPECT_THAT(reply.body, HasSubstr("rsr_exporter_scrape_errors_total 0\n"));
  EXPECT_EQ(promtool_findings(reply.body), "");

  EXPECT_THAT(reply.body, HasSubstr("pid=\"" + std::to_string(pid) + "\""));  // on rsr_info

  // A second process of the job is picked up at the next scrape, as the host's second instance
  // (the instance stays the same when the processes restart; the pids are on rsr_info).
  const pid_t second = start_target();
  ASSERT_GT(second, 0);
  reply = rsrtest::http_get(port, "/metrics");
  EXPECT_THAT(reply.body, HasSubstr("instance=\"" + hostname() + "/2\""));
  EXPECT_THAT(reply.body, HasSubstr("pid=\"" + std::to_string(second) + "\""));
  EXPECT_THAT(reply.body, HasSubstr(instance));

  kill(serve.pid, SIGTERM);
  const Result done = rsrtest::finish(serve);
  EXPECT_EQ(done.code, 0) << done.err;
}

TEST_F(MetricsE2eTest, ServeCountsAProcessItCannotQuery) {
  const pid_t pid = start_target();
  ASSERT_GT(pid, 0);
  // Stop the process so it cannot answer: the scrape times out on it.
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  Child serve = ctl_spawn({"--pid", std::to_string(pid), "--timeout", "0.3", "serve", "--listen",
                           "127.0.0.1:0"});
  const std::string line = read_line_with(serve, "serving http://127.0.0.1:");
  ASSERT_NE(line, "");
  const int port = std::atoi(line.c_str() + line.rfind(':') + 1);
  const rsrtest::HttpReply reply = rsrtest::http_get(port, "/metrics");
  kill(pid, SIGCONT);
  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.body, HasSubstr("rsr_exporter_scrape_errors_total 1\n"));
  EXPECT_THAT(reply.body, Not(HasSubstr("rsr_memory_usage_bytes")));
  kill(serve.pid, SIGINT);
  const Result done = rsrtest::finish(serve);
  EXPECT_EQ(done.code, 0);
  EXPECT_THAT(done.err, HasSubstr("pid " + std::to_string(pid)));
}

TEST_F(MetricsE2eTest, ServeRefusesABadListen) {
  Result r = ctl({"serve", "--listen", "nowhere"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad --listen 'nowhere'"));
  // A port already taken.
  const rsrtest::RecordingHttp busy;
  const std::string taken = busy.url().substr(std::string("http://").size());
  r = ctl({"serve", "--listen", taken});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot listen on " + taken));
}

TEST_F(MetricsE2eTest, PushGroupsByJobAndInstance) {
  Pushgateway gateway(pushgateway_, dir_);
  ASSERT_TRUE(gateway.ready());
  const pid_t pid = start_target();
  ASSERT_GT(pid, 0);
  Result r = ctl({"--pid", std::to_string(pid), "push", "--gateway", gateway.url()});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string labels = "{instance=\"" + hostname() + "\",job=\"ctl-e2e-target\"}";
  std::string pushed = gateway.metrics();
  EXPECT_THAT(pushed, AllOf(HasSubstr("rsr_memory_usage_bytes" + labels),
                            HasSubstr("push_time_seconds" + labels)));
  EXPECT_THAT(pushed, Not(HasSubstr("push_failure_time_seconds" + labels + " 1")));

  // --job with characters the URL path must escape.
  r = ctl({"push", "--gateway", gateway.url(), "--job", "batch job:1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(gateway.metrics(),
              HasSubstr("rsr_memory_usage_bytes{instance=\"" + hostname() + "\",job=\"batch job:1\"}"));
}

TEST_F(MetricsE2eTest, PushToNoGatewayExitsFour) {
  const pid_t pid = start_target();
  ASSERT_GT(pid, 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(rsrtest::free_loopback_port());
  const Result r = ctl({"push", "--gateway", url});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("could not push to the Pushgateway at " + url));
  EXPECT_EQ(ctl({"push", "--gateway", "localhost:9091"}).code, 2);
  EXPECT_EQ(ctl({"push"}).code, 2);
}

TEST_F(MetricsE2eTest, RunPushesWhileRunningAndOnceMoreAfterExit) {
  Pushgateway gateway(pushgateway_, dir_);
  ASSERT_TRUE(gateway.ready());
  Child run = ctl_spawn({"run", "--push-gateway", gateway.url(), "--push-interval", "0.2", "--",
                         target_, "wait"});
  const std::string line = read_line_with(run, "monitoring pid ");
  ASSERT_NE(line, "");
  const pid_t pid = std::atoi(line.c_str() + line.rfind(' ') + 1);
  ASSERT_GT(pid, 0);
  const std::string labels = "{instance=\"" + hostname() + "\",job=\"ctl-e2e-target\"}";
  bool running_seen = false;
  for (int i = 0; i < 200 && !running_seen; ++i) {
    running_seen = gateway.metrics().find("rsr_process_exited" + labels + " 0") != std::string::npos;
    if (!running_seen) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(running_seen) << gateway.metrics();

  kill(run.pid, SIGTERM);
  const Result done = rsrtest::finish(run);
  EXPECT_EQ(done.code, 128 + SIGTERM) << done.err;
  EXPECT_THAT(gateway.metrics(), AllOf(HasSubstr("rsr_process_exited" + labels + " 1"),
                                       HasSubstr("rsr_process_exit_code" + labels + " 143"),
                                       HasSubstr("rsr_memory_usage_bytes" + labels)));

  // The next run of the job replaces that group rather than leaving one more behind.
  const Result again = rsrtest::run({ctl_, "run", "--push-gateway", gateway.url(), "--", target_, "exit", "5"});
  EXPECT_EQ(again.code, 5) << again.err;
  const std::string pushed = gateway.metrics();
  size_t groups = 0;
  for (size_t at = pushed.find("push_time_seconds{"); at != std::string::npos; at = pushed.find("push_time_seconds{", at + 1))
    if (pushed.compare(at - 1, 1, "\n") == 0 && pushed.find("job=\"ctl-e2e-target\"", at) < pushed.find('\n', at)) ++groups;
  EXPECT_EQ(groups, 1u) << pushed;
  EXPECT_THAT(pushed, HasSubstr("rsr_process_exit_code" + labels + " 5"));
}

}  // namespace
