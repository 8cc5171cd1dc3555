// heap-profile and serve's /debug/pprof/ end to end: tests/ctl/heap_target.cc under the real
// librsrmem.so, the real rsrmemctl, and Go's own pprof (Debian's golang-go) reading what they
// write, from a file and over HTTP. Paths come from the environment (tests/ctl/meson.build):
// RSRMEMCTL, RSR_PRELOAD_LIB, RSR_HEAP_TARGET.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "http_loopback.h"
#include "subprocess.h"

namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using rsrtest::Result;

constexpr const char* kGo = "/usr/bin/go";
// What heap_target.cc allocates.
constexpr int kHeld = 2048;
constexpr size_t kHeldSize = 16384;
constexpr int kChurned = 20000;
constexpr size_t kChurnSize = 4000;
constexpr int kLater = 1024;
constexpr uint64_t kInterval = 65536;  // RSR_SAMPLE_INTERVAL_BYTES of the sampled runs

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

bool wait_for(const std::string& path, int ms = 10000) {
  for (int i = 0; i < ms / 20 && !exists(path); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return exists(path);
}

// glibc's usable size for a request (the library counts usable sizes); the same in this process.
size_t usable(size_t request) {
  void* p = std::malloc(request);
  const size_t n = malloc_usable_size(p);
  std::free(p);
  return n;
}

// The flat value of `function` in `pprof -top` (with -unit=B for bytes), or -1 when it is not
// listed.
int64_t flat(const std::string& top, const std::string& function) {
  std::istringstream lines(top);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() < function.size() ||
        line.compare(line.size() - function.size(), function.size(), function) != 0)
      continue;
    std::istringstream row(line);
    std::string flat;
    row >> flat;
    if (!flat.empty() && flat.find_first_not_of("0123456789B") == std::string::npos)
      return std::atoll(flat.c_str());
  }
  return -1;
}

// The first function of `pprof -top`'s table.
std::string top_function(const std::string& top) {
  std::istringstream lines(top);
  bool table = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("flat%") != std::string::npos) {
      table = true;
      continue;
    }
    if (table) return line.substr(line.rfind(' ') + 1);
  }
  return "";
}

// The parts of a multipart/form-data body by their form names.
std::map<std::string, std::string> form_parts(const std::string& content_type, const std::string& body) {
  std::map<std::string, std::string> parts;
  const size_t at = content_type.find("boundary=");
  if (at == std::string::npos) return parts;
  const std::string delimiter = "--" + content_type.substr(at + 9);
  for (size_t from = body.find(delimiter); from != std::string::npos;) {
    const size_t head = from + delimiter.size() + 2;  // past the delimiter's CRLF
    const size_t next = body.find("\r\n" + delimiter, head);
    if (next == std::string::npos) break;
    const std::string part = body.substr(head, next - head);
    const size_t split = part.find("\r\n\r\n");
    const size_t name = part.find("name=\"");
    if (split != std::string::npos && name != std::string::npos && name < split)
      parts[part.substr(name + 6, part.find('"', name + 6) - name - 6)] = part.substr(split + 4);
    from = next + 2;
  }
  return parts;
}

class HeapProfileE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kGo, X_OK), 0) << kGo << " is not installed (Debian golang-go; scripts/bootstrap installs it)";
    char tmpl[] = "/tmp/rsrctl-heap-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (exists(dir_ + "/tmux.sock"))  // top's terminal, when its test stopped half-way
      rsrtest::run({"/usr/bin/tmux", "-S", dir_ + "/tmux.sock", "kill-server"});
    if (serve_.pid > 0) {
      kill(serve_.pid, SIGTERM);
      rsrtest::finish(serve_);
    }
    for (rsrtest::Child& c : targets_) {
      kill(c.pid, SIGKILL);
      rsrtest::finish(c);
    }
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // Starts heap_target under the preload; returns its pid once it holds its blocks.
  pid_t start(bool detailed, const std::string& name = "heapsvc") {
    const std::string marks = dir_ + "/" + name + std::to_string(targets_.size());
    mkdir(marks.c_str(), 0755);
    rsrtest::EnvOverrides env = {{"LD_PRELOAD", lib_},
                                 {"RSR_SOCKET_DIR", dir_ + "/sock"},
                                 {"RSR_SERVICE_NAME", name}};
    if (detailed)
      env["RSR_MEMORY_DETAILED_TRACKING"] = "true";
    else
      env["RSR_SAMPLE_INTERVAL_BYTES"] = std::to_string(kInterval);
    targets_.push_back(rsrtest::spawn({program_, marks}, env));
    const pid_t pid = targets_.back().pid;
    if (!wait_for(marks + "/ready") || !wait_for(dir_ + "/sock/" + std::to_string(pid) + ".sock"))
      return -1;
    later_marks_.push_back(marks + "/later");
    return pid;
  }

  Result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return rsrtest::run(args, {{"RSR_SOCKET_DIR", dir_ + "/sock"}});
  }

  // `go tool pprof ARGS SOURCE` (a file or a URL); fails the test unless pprof succeeds.
  std::string pprof(const std::vector<std::string>& args, const std::string& source) {
    std::vector<std::string> argv = {kGo, "tool", "pprof"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(source);
    const Result r = rsrtest::run(argv, {{"PPROF_TMPDIR", dir_}, {"HOME", dir_}});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  }

  // `rsrmemctl serve --all` on a free loopback port; returns the port once it answers.
  int serve() {
    const int port = rsrtest::free_loopback_port();
    serve_ = rsrtest::spawn({ctl_, "--all", "serve", "--listen", "127.0.0.1:" + std::to_string(port)},
                            {{"RSR_SOCKET_DIR", dir_ + "/sock"}});
    for (int i = 0; i < 250; ++i) {
      if (rsrtest::http_get(port, "/debug/pprof/").status == 200) return port;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  std::string ctl_ = rsrtest::env_or_die("RSRMEMCTL");
  std::string lib_ = rsrtest::env_or_die("RSR_PRELOAD_LIB");
  std::string program_ = rsrtest::env_or_die("RSR_HEAP_TARGET");
  std::string dir_;
  std::vector<rsrtest::Child> targets_;
  std::vector<std::string> later_marks_;
  rsrtest::Child serve_;
};

TEST_F(HeapProfileE2eTest, SampledProfileNamesTheHoldersWithinTheSamplersError) {
  const pid_t pid = start(/*detailed=*/false);
  ASSERT_GT(pid, 0);
  const std::string file = dir_ + "/heap.pb.gz";
  const Result r = ctl({"--pid", std::to_string(pid), "heap-profile", "-o", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Wrote the heap profile of " + std::to_string(pid)));

  // What is live: hold_sessions' blocks, estimated from samples. The estimate of S bytes in
  // blocks far below the interval T has a standard deviation of about sqrt(S * T).
  const std::string inuse = pprof({"-top", "-unit=B", "-sample_index=inuse_space"}, file);
  EXPECT_THAT(inuse, HasSubstr("Type: inuse_space"));
  EXPECT_EQ(top_function(inuse), "hold_sessions()") << inuse;
  const double held = static_cast<double>(kHeld * usable(kHeldSize));
  const double sd = std::sqrt(held * kInterval);
  EXPECT_NEAR(static_cast<double>(flat(inuse, "hold_sessions()")), held, 4 * sd) << inuse;
  EXPECT_THAT(inuse, Not(HasSubstr("churn_buffers()"))) << "freed blocks are not in use";

  // Everything allocated since start: churn_buffers too.
  const std::string alloc = pprof({"-top", "-unit=B", "-sample_index=alloc_space"}, file);
  const double churned = static_cast<double>(kChurned * usable(kChurnSize));
  EXPECT_EQ(top_function(alloc), "churn_buffers()") << alloc;
  EXPECT_NEAR(static_cast<double>(flat(alloc, "churn_buffers()")), churned,
              4 * std::sqrt(churned * kInterval))
      << alloc;
  // The sampling is stated in the profile.
  EXPECT_THAT(alloc, HasSubstr("mean interval 65536 bytes"));
}

TEST_F(HeapProfileE2eTest, DetailedProfileIsExactWithStacksAndLabels) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  const std::string file = dir_ + "/heap.pb.gz";
  ASSERT_EQ(ctl({"--pid", std::to_string(pid), "heap-profile", "-o", file}).code, 0);
  const std::string inuse = pprof({"-top", "-unit=B", "-sample_index=inuse_space"}, file);
  EXPECT_EQ(flat(inuse, "hold_sessions()"), static_cast<int64_t>(kHeld * usable(kHeldSize)))
      << inuse;
  const std::string objects = pprof({"-top", "-sample_index=alloc_objects"}, file);
  EXPECT_EQ(flat(objects, "churn_buffers()"), kChurned) << objects;
  EXPECT_EQ(flat(objects, "hold_sessions()"), kHeld) << objects;
  const std::string traces = pprof({"-traces", "-sample_index=inuse_space"}, file);
  EXPECT_THAT(traces, HasSubstr("hold_sessions()"));
  EXPECT_THAT(traces, HasSubstr("main"));
  EXPECT_THAT(traces, ContainsRegex("service: +heapsvc"));
  EXPECT_THAT(traces, ContainsRegex("pid: +" + std::to_string(pid)));
  EXPECT_THAT(traces, ContainsRegex("job: +heapsvc"));
}

TEST_F(HeapProfileE2eTest, FoldedGoesToStdout) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  const Result r =
      ctl({"--pid", std::to_string(pid), "heap-profile", "--format", "folded", "--kind", "alloc"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(";main;churn_buffers() " + std::to_string(kChurned * usable(kChurnSize)) + "\n"));
  EXPECT_THAT(r.err, HasSubstr("Wrote the heap profile")) << "what was written is said on stderr";
}

TEST_F(HeapProfileE2eTest, AllWritesOneFilePerProcess) {
  const pid_t a = start(/*detailed=*/false, "alpha");
  const pid_t b = start(/*detailed=*/false, "beta");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  const std::string out = dir_ + "/profiles";
  mkdir(out.c_str(), 0755);
  const Result r = ctl({"--all", "heap-profile", "-o", out});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const auto& [job, pid] : {std::pair{"alpha", a}, std::pair{"beta", b}}) {
    const std::string file = out + "/" + job + "." + std::to_string(pid) + ".heap.pb.gz";
    ASSERT_TRUE(exists(file)) << r.out;
    EXPECT_EQ(top_function(pprof({"-top"}, file)), "hold_sessions()");
  }
  EXPECT_EQ(ctl({"--all", "heap-profile", "-o", "-"}).code, 2) << "--all cannot write one stdout";
  EXPECT_EQ(ctl({"--all", "heap-profile", "-o", dir_ + "/none"}).code, 3);
  const Result file = ctl({"--all", "heap-profile", "-o", out + "/alpha." + std::to_string(a) + ".heap.pb.gz"});
  EXPECT_EQ(file.code, 2);
  EXPECT_THAT(file.err, HasSubstr("is not a directory"));
}

TEST_F(HeapProfileE2eTest, ServeAnswersGoPprofOverHttp) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  const int port = serve();
  ASSERT_GT(port, 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  const std::string index = rsrtest::http_get(port, "/debug/pprof/").body;
  EXPECT_THAT(index, HasSubstr("heap?pid=" + std::to_string(pid)));
  EXPECT_THAT(index, HasSubstr("heapsvc"));

  const std::string heap = base + "/debug/pprof/heap?pid=" + std::to_string(pid);
  const std::string top = pprof({"-top", "-unit=B"}, heap);
  EXPECT_THAT(top, HasSubstr("Type: inuse_space"));
  EXPECT_EQ(flat(top, "hold_sessions()"), static_cast<int64_t>(kHeld * usable(kHeldSize))) << top;
  EXPECT_THAT(pprof({"-traces"}, heap), HasSubstr("hold_sessions()"));
  EXPECT_THAT(pprof({"-top"}, base + "/debug/pprof/allocs?pid=" + std::to_string(pid)),
              HasSubstr("Type: alloc_space"));
  // One process served: the pid may be left out.
  EXPECT_EQ(rsrtest::http_get(port, "/debug/pprof/heap?debug=1").status, 200);

  EXPECT_EQ(rsrtest::http_get(port, "/debug/pprof/heap?pid=1").status, 404);
  EXPECT_EQ(rsrtest::http_get(port, "/debug/pprof/heap?seconds=0").status, 400);
  EXPECT_EQ(rsrtest::http_get(port, "/debug/pprof/goroutine").status, 404);
  EXPECT_EQ(rsrtest::http_get(port, "/metrics").status, 200) << "metrics stay served";
}

TEST_F(HeapProfileE2eTest, SecondsGivesTheDeltaOverTheSpan) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  const int port = serve();
  ASSERT_GT(port, 0);
  // The later phase runs inside the 3-second span; everything before it is left out.
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    kill(pid, SIGUSR1);
  });
  const rsrtest::HttpReply r =
      rsrtest::http_get(port, "/debug/pprof/heap?debug=1&seconds=3&pid=" + std::to_string(pid));
  later.join();
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(wait_for(later_marks_.back()));
  EXPECT_THAT(r.body, HasSubstr(";main;later_phase() " + std::to_string(kLater * usable(kHeldSize)) + "\n"));
  EXPECT_THAT(r.body, Not(HasSubstr("hold_sessions()")));
  EXPECT_THAT(r.body, Not(HasSubstr("churn_buffers()")));
}

// The per-site gauges of `metrics` follow the sites from the first scrape, without waiting for
// RSR_MEMORY_METRICS_UPDATE_INTERVAL (5 minutes by default) or update-metrics.
TEST_F(HeapProfileE2eTest, PerSiteGaugesFromTheFirstScrape) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ctl({"--pid", std::to_string(pid), "status"}).code, 0);  // the library is up
  kill(pid, SIGUSR1);
  ASSERT_TRUE(wait_for(later_marks_.back()));
  const Result r = ctl({"--pid", std::to_string(pid), "metrics"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ContainsRegex("rsr_model_instance_count\\{[^}]*site=\"later_phase \\(heap_target.cc:[0-9]+\\)\"\\} 1024"))
      << r.out;
  EXPECT_THAT(r.out, ContainsRegex("rsr_object_growth_rate\\{[^}]*site=\"later_phase "));
}

TEST_F(HeapProfileE2eTest, PushSendsProfilesToPyroscopesIngestApi) {
  const pid_t pid = start(/*detailed=*/true);
  ASSERT_GT(pid, 0);
  rsrtest::RecordingHttp pyroscope;
  const std::string target = std::to_string(pid);
  Result r = ctl({"--pid", target, "push", "--pyroscope", pyroscope.url()});
  ASSERT_EQ(r.code, 0) << r.err;
  // One push: the allocations since the process started, and what is in use.
  const std::vector<rsrtest::RecordingHttp::Request> first = pyroscope.requests();
  ASSERT_EQ(first.size(), 1u);
  const rsrtest::RecordingHttp::Request& q = first[0];
  EXPECT_EQ(q.method, "POST");
  EXPECT_THAT(q.path, ::testing::StartsWith("/ingest?name=heapsvc%7Bhostname%3D"));
  // Named as the Prometheus series are, stable across restarts: the job's first process on
  // the host (the pid would make a new series at every restart).
  EXPECT_THAT(q.path, HasSubstr("%2Cprocess%3D1%7D"));
  EXPECT_THAT(q.path, Not(HasSubstr(target)));
  EXPECT_THAT(q.path, HasSubstr("&format=pprof"));
  EXPECT_THAT(q.path, ContainsRegex("&from=[0-9]+&until=[0-9]+"));
  EXPECT_THAT(q.content_type, ::testing::StartsWith("multipart/form-data; boundary="));
  std::map<std::string, std::string> parts = form_parts(q.content_type, q.body);
  ASSERT_EQ(parts.count("profile"), 1u) << q.body.substr(0, 300);
  ASSERT_EQ(parts.count("sample_type_config"), 1u);
  const nlohmann::json config = nlohmann::json::parse(parts["sample_type_config"]);
  EXPECT_EQ(config["inuse_space"]["aggregation"], "average");
  EXPECT_EQ(config["alloc_space"]["aggregation"], "sum");
  EXPECT_EQ(config["alloc_objects"]["units"], "objects");
  EXPECT_EQ(config["inuse_space"]["sampled"], false);
  const std::string file = dir_ + "/pushed.pb.gz";
  std::ofstream(file, std::ios::binary) << parts["profile"];
  EXPECT_EQ(flat(pprof({"-top", "-unit=B", "-sample_index=inuse_space"}, file), "hold_sessions()"),
            static_cast<int64_t>(kHeld * usable(kHeldSize)));
  EXPECT_EQ(flat(pprof({"-top", "-unit=B", "-sample_index=alloc_space"}, file), "churn_buffers()"),
            static_cast<int64_t>(kChurned * usable(kChurnSize)));

  // Repeated pushes: each sends the allocations since the one before, and what is in use now.
  rsrtest::RecordingHttp repeated;
  rsrtest::Child pusher = rsrtest::spawn(
      {ctl_, "--pid", target, "push", "--pyroscope", repeated.url(), "--interval", "0.5"},
      {{"RSR_SOCKET_DIR", dir_ + "/sock"}});
  for (int i = 0; i < 250 && repeated.requests().size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pusher.pid, SIGTERM);
  EXPECT_EQ(rsrtest::finish(pusher).code, 0);
  const std::vector<rsrtest::RecordingHttp::Request> pushes = repeated.requests();
  ASSERT_GE(pushes.size(), 2u);
  parts = form_parts(pushes[1].content_type, pushes[1].body);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << parts["profile"];
  const std::string allocs = pprof({"-top", "-unit=B", "-sample_index=alloc_space"}, file);
  EXPECT_THAT(allocs, Not(HasSubstr("churn_buffers()"))) << "allocated before the previous push";
  EXPECT_EQ(flat(pprof({"-top", "-unit=B", "-sample_index=inuse_space"}, file), "hold_sessions()"),
            static_cast<int64_t>(kHeld * usable(kHeldSize)))
      << "what is in use is sent whole";
}

TEST_F(HeapProfileE2eTest, RefusedPushSaysWhy) {
  const pid_t pid = start(/*detailed=*/false);
  ASSERT_GT(pid, 0);
  rsrtest::RecordingHttp refusing(503);
  const Result r = ctl({"--pid", std::to_string(pid), "push", "--pyroscope", refusing.url()});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("refused the profile"));
  EXPECT_THAT(r.err, HasSubstr("HTTP status 503"));
  EXPECT_EQ(ctl({"--pid", std::to_string(pid), "push"}).code, 2) << "nothing to push to";
  EXPECT_EQ(ctl({"--pid", std::to_string(pid), "push", "--pyroscope", "ftp://x"}).code, 2);
}

TEST_F(HeapProfileE2eTest, RunPushesTheLaunchedProcesssProfiles) {
  rsrtest::RecordingHttp pyroscope;
  const std::string marks = dir_ + "/run";
  mkdir(marks.c_str(), 0755);
  rsrtest::Child run = rsrtest::spawn(
      {ctl_, "run", "--pyroscope", pyroscope.url(), "--push-interval", "0.3", "--", program_, marks},
      {{"RSR_SOCKET_DIR", dir_ + "/sock"}, {"RSR_SERVICE_NAME", "launched"}});
  for (int i = 0; i < 500 && pyroscope.requests().size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(run.pid, SIGTERM);  // forwarded to the command, which ends; then run ends
  const Result r = rsrtest::finish(run);
  EXPECT_EQ(r.code, 128 + SIGTERM) << r.err;
  const std::vector<rsrtest::RecordingHttp::Request> pushes = pyroscope.requests();
  ASSERT_GE(pushes.size(), 2u) << r.err;
  EXPECT_THAT(pushes[0].path, ::testing::StartsWith("/ingest?name=launched%7B"));
  const std::string file = dir_ + "/run.pb.gz";
  std::ofstream(file, std::ios::binary) << form_parts(pushes[0].content_type, pushes[0].body)["profile"];
  EXPECT_EQ(top_function(pprof({"-top"}, file)), "hold_sessions()");
}

TEST_F(HeapProfileE2eTest, TopRunsInATerminalAndTakesKeys) {
  const std::string tmux = "/usr/bin/tmux";
  ASSERT_EQ(access(tmux.c_str(), X_OK), 0) << "tmux is not installed (scripts/bootstrap installs it)";
  const pid_t pid = start(/*detailed=*/false);
  ASSERT_GT(pid, 0);
  // A tmux server of the test's own, in its directory.
  const std::string server = dir_ + "/tmux.sock";
  auto tmux_run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {tmux, "-S", server});
    return rsrtest::run(args);
  };
  auto screen = [&] { return tmux_run({"capture-pane", "-p", "-t", "top"}).out; };
  auto wait_screen = [&](const std::string& text) {
    for (int i = 0; i < 250; ++i) {
      if (screen().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  const Result started = tmux_run(
      {"new-session", "-d", "-s", "top", "-x", "150", "-y", "40",
       "env RSR_SOCKET_DIR='" + dir_ + "/sock' '" + ctl_ + "' --pid " + std::to_string(pid) +
           " top --interval 0.3"});
  ASSERT_EQ(started.code, 0) << started.err;
  EXPECT_TRUE(wait_screen("hold_sessions (heap_target.cc:")) << screen();
  EXPECT_THAT(screen(), HasSubstr(std::to_string(pid) + " (heapsvc)"));
  EXPECT_THAT(screen(), HasSubstr("sorted by live bytes"));
  EXPECT_THAT(screen(), HasSubstr("leaks none found"));

  // The later phase shows up in place; g sorts by growth, p pauses.
  kill(pid, SIGUSR1);
  EXPECT_TRUE(wait_screen("later_phase (heap_target.cc:")) << screen();
  tmux_run({"send-keys", "-t", "top", "g"});
  EXPECT_TRUE(wait_screen("sorted by growth")) << screen();
  tmux_run({"send-keys", "-t", "top", "p"});
  EXPECT_TRUE(wait_screen("[paused]")) << screen();
  tmux_run({"send-keys", "-t", "top", "q"});
  bool ended = false;
  for (int i = 0; i < 250 && !ended; ++i) {
    ended = tmux_run({"has-session", "-t", "top"}).code != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(ended) << "q quits";
  tmux_run({"kill-server"});

  // Not a terminal: one plain frame.
  const Result plain = ctl({"--pid", std::to_string(pid), "top"});
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_THAT(plain.out, HasSubstr("later_phase (heap_target.cc:"));
  EXPECT_THAT(plain.out, Not(HasSubstr("\x1b[")));
  // No process to show is said, not an exit: the view waits for one.
  mkdir((dir_ + "/empty").c_str(), 0700);
  const Result none = rsrtest::run({ctl_, "--all", "top"}, {{"RSR_SOCKET_DIR", dir_ + "/empty"}});
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("no monitored processes"));
}

// speedscope (npm; scripts/bootstrap unpacks it into the user's cache) opens a heap profile in
// Debian's headless Chromium, served over loopback HTTP as speedscope loads profiles by URL.
TEST_F(HeapProfileE2eTest, SpeedscopeOpensTheProfile) {
  const char* cache = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string speedscope =
      (cache && *cache ? std::string(cache) : std::string(home ? home : "/root") + "/.cache") +
      "/rsrmem/speedscope-1.25.0/package/dist/release";
  ASSERT_TRUE(exists(speedscope + "/index.html")) << speedscope << ": run scripts/bootstrap";
  const std::string chromium = "/usr/bin/chromium";
  ASSERT_EQ(access(chromium.c_str(), X_OK), 0) << "chromium is not installed (scripts/bootstrap installs it)";
  const pid_t pid = start(/*detailed=*/false);
  ASSERT_GT(pid, 0);
  const std::string www = dir_ + "/www";
  mkdir(www.c_str(), 0755);
  ASSERT_EQ(symlink(speedscope.c_str(), (www + "/speedscope").c_str()), 0);
  ASSERT_EQ(ctl({"--pid", std::to_string(pid), "heap-profile", "-o", www + "/heap.pb.gz"}).code, 0);

  const int port = rsrtest::free_loopback_port();
  rsrtest::Child http = rsrtest::spawn({"/usr/bin/python3", "-m", "http.server", std::to_string(port),
                                        "--bind", "127.0.0.1", "--directory", www});
  for (int i = 0; i < 250 && rsrtest::http_get(port, "/heap.pb.gz").status != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  auto open = [&](const std::string& profile, const std::string& title) {
    // Bounded: a page that waits on a dialog never ends its virtual time.
    return rsrtest::run({"/usr/bin/timeout", "60", chromium, "--headless=new", "--no-sandbox",
                         "--disable-gpu",
                         "--disable-dev-shm-usage", "--user-data-dir=" + dir_ + "/chromium-" + title,
                         "--no-first-run", "--virtual-time-budget=8000", "--enable-logging=stderr",
                         "--v=0", "--dump-dom",
                         base + "/speedscope/index.html#profileURL=" + base + "/" + profile +
                             "&title=" + title},
                        {{"HOME", dir_}});
  };
  const Result good = open("heap.pb.gz", "rsrmem-heap");
  kill(http.pid, SIGTERM);
  rsrtest::finish(http);

  EXPECT_EQ(good.code, 0) << good.err;
  EXPECT_THAT(good.err, HasSubstr("Importing as protobuf encoded pprof file")) << good.err;
  // The views are offered once a profile is loaded (not on the page's import screen).
  EXPECT_THAT(good.out, HasSubstr("Left Heavy"));
  EXPECT_THAT(good.out, HasSubstr("rsrmem-heap"));
  std::istringstream log(good.err);
  for (std::string line; std::getline(log, line);)
    EXPECT_TRUE(line.find("ERROR:CONSOLE") == std::string::npos && line.find("Uncaught") == std::string::npos)
        << line;
}

// Deltas hold a server thread for their span: at most two at once, /metrics keeps answering, and
// SIGTERM ends them (503) instead of waiting out their span.
TEST_F(HeapProfileE2eTest, ServeBoundsDeltasAndStopsDuringThem) {
  const pid_t pid = start(/*detailed=*/false);
  ASSERT_GT(pid, 0);
  const int port = serve();
  ASSERT_GT(port, 0);
  const std::string delta = "/debug/pprof/allocs?seconds=3600&pid=" + std::to_string(pid);
  rsrtest::HttpReply first, second;
  std::thread a([&] { first = rsrtest::http_get(port, delta); });
  std::thread b([&] { second = rsrtest::http_get(port, delta); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const rsrtest::HttpReply third = rsrtest::http_get(port, delta);
  EXPECT_EQ(third.status, 503);
  EXPECT_THAT(third.body, HasSubstr("delta profiles are being taken"));
  EXPECT_EQ(rsrtest::http_get(port, "/metrics").status, 200) << "scrapes keep a thread";
  EXPECT_EQ(rsrtest::http_get(port, "/debug/pprof/heap?pid=" + std::to_string(pid)).status, 200);

  const auto stop_at = std::chrono::steady_clock::now();
  kill(serve_.pid, SIGTERM);
  const Result served = rsrtest::finish(serve_);
  serve_.pid = -1;
  a.join();
  b.join();
  EXPECT_EQ(served.code, 0) << served.err;
  EXPECT_LT(std::chrono::steady_clock::now() - stop_at, std::chrono::seconds(10));
  EXPECT_EQ(first.status, 503);
  EXPECT_THAT(first.body, HasSubstr("stopping"));
  EXPECT_EQ(second.status, 503);
}

// A program started through a symbolic link (redis-server -> redis-check-rdb) is named after the
// link: the name it was started as, not its executable's.
TEST_F(HeapProfileE2eTest, ServiceIsTheNameTheProgramWasStartedAs) {
  const std::string link = dir_ + "/renamed-svc";
  ASSERT_EQ(symlink(program_.c_str(), link.c_str()), 0);
  const std::string marks = dir_ + "/renamed";
  mkdir(marks.c_str(), 0755);
  targets_.push_back(rsrtest::spawn({link, marks}, {{"LD_PRELOAD", lib_}, {"RSR_SOCKET_DIR", dir_ + "/sock"}}));
  const pid_t pid = targets_.back().pid;
  ASSERT_TRUE(wait_for(marks + "/ready"));
  ASSERT_TRUE(wait_for(dir_ + "/sock/" + std::to_string(pid) + ".sock"));
  const Result r = ctl({"--pid", std::to_string(pid), "--format", "json", "status"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json status = nlohmann::json::parse(r.out);
  EXPECT_EQ(status["service"], "renamed-svc");
  EXPECT_THAT(status["program"].get<std::string>(), HasSubstr("ctl-heap-target"))
      << "the program is still the executable";
}

}  // namespace
