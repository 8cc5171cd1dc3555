// The commands against fake control servers that answer with replies shaped as in
// common/protocol.md: text and JSON rendering, exit codes, --all, and stale-socket clean-up.
#include "commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sstream>

#include "errors.h"
#include "fake_server.h"
#include "module_map.h"
#include "symbolizer_fixture.h"

namespace {

using namespace rsr::ctl;
using ::testing::HasSubstr;
using ::testing::Not;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Json common(pid_t pid) {
  return Json{{"ok", true},       {"pid", pid},         {"program", "/usr/bin/svc"},
              {"service", "svc"}, {"version", "0.1.0"}, {"protocol", 1}};
}

Json health_reply(pid_t pid, bool healthy) {
  Json r = common(pid);
  r["status"] = healthy ? "healthy" : "degraded";
  r["components"] = Json{
      {"tracking", {{"status", "ok"}, {"detail", "exact counters and sampler running"}}},
      {"stack_capture", {{"status", healthy ? "ok" : "degraded"}, {"detail", "libunwind missing"}}},
      {"control_socket", {{"status", "ok"}, {"detail", "/tmp/x.sock"}}}};
  return r;
}

// Answers by command name from a table of replies.
rsrtest::FakeServer::Handler answers(std::map<std::string, Json> by_cmd) {
  return [by_cmd = std::move(by_cmd)](const std::string& request) {
    const std::string cmd = Json::parse(request).value("cmd", "");
    auto it = by_cmd.find(cmd);
    if (it == by_cmd.end())
      return rsrtest::frame(rsr::proto::Kind::kError,
                            R"({"ok":false,"error":"unknown command ')" + cmd + "'\"}");
    return rsrtest::reply(it->second.dump());
  };
}

void make_dead_socket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
}

class CommandsTest : public ::testing::Test {
 protected:
  std::string socket_for(pid_t pid) const {
    return dir_.path() + "/" + std::to_string(pid) + ".sock";
  }

  GlobalOptions options(TargetMode mode, OutputFormat format = OutputFormat::kText) const {
    GlobalOptions g;
    g.target.mode = mode;
    g.target.dir = dir_.path();
    g.target.pid = getpid();
    g.format = format;
    g.timeout = std::chrono::milliseconds(2000);
    return g;
  }

  rsrtest::TempDir dir_;
  std::ostringstream out_, err_;
  Io io_{out_, err_};
};

TEST_F(CommandsTest, HealthyPrintsTheSeedsShapeAndExitsZero) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"health", health_reply(getpid(), true)}}));
  EXPECT_EQ(cmd_health(options(TargetMode::kPid), false, io_), kExitOk);
  EXPECT_EQ(out_.str(),
            "Health check complete. Status: healthy\n"
            "\n"
            "Component status:\n"
            "  tracking: ok\n"
            "  stack_capture: ok\n"
            "  control_socket: ok\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, DegradedExitsOneAndVerboseShowsDetails) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"health", health_reply(getpid(), false)}}));
  EXPECT_EQ(cmd_health(options(TargetMode::kPid), true, io_), kExitNegative);
  EXPECT_THAT(out_.str(), HasSubstr("Health check complete. Status: degraded\n"));
  EXPECT_THAT(out_.str(), HasSubstr("  stack_capture: degraded (libunwind missing)\n"));
  EXPECT_THAT(out_.str(),
              HasSubstr("Process " + std::to_string(getpid()) + " (svc), rsrmem 0.1.0"));
}

TEST_F(CommandsTest, HealthJsonIsTheReply) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"health", health_reply(getpid(), true)}}));
  EXPECT_EQ(cmd_health(options(TargetMode::kPid, OutputFormat::kJson), false, io_), kExitOk);
  EXPECT_EQ(Json::parse(out_.str()), health_reply(getpid(), true));
}

TEST_F(CommandsTest, RefusalIsExitFourWithTheMessage) {
  rsrtest::FakeServer server(socket_for(getpid()), answers({}));
  EXPECT_EQ(cmd_update_metrics(options(TargetMode::kPid), io_), kExitConnection);
  EXPECT_THAT(err_.str(), HasSubstr("pid " + std::to_string(getpid()) +
                                    ": the process refused 'update_metrics': unknown command"));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandsTest, UpdateMetrics) {
  Json r = common(getpid());
  r["updated_at"] = 1700000000;
  r["sites"] = 42;
  rsrtest::FakeServer server(socket_for(getpid()), answers({{"update_metrics", r}}));
  EXPECT_EQ(cmd_update_metrics(options(TargetMode::kPid), io_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Metrics updated for " + std::to_string(getpid()) +
                                    " (svc): 42 call sites refreshed at"));
}

TEST_F(CommandsTest, StatusShowsConfigInTableOrderAndOverhead) {
  Json r = common(getpid());
  r["cmdline"] = {"svc", "--port", "8080"};
  r["uptime_s"] = 3725;
  r["start_time"] = 1700000000;
  r["socket"] = socket_for(getpid());
  r["mode"] = "sampled";
  r["config"] = Json{{"RSR_STACK_DEPTH", "64"},
                     {"RSR_MEMORY_MONITORING_ENABLED", "true"},
                     {"RSR_FUTURE_SETTING", "x"}};
  r["config_warnings"] = {"RSR_STACK_DEPTH=900 is out of range; using 64"};
  r["sampling"] =
      Json{{"mode", "sampled"}, {"interval_bytes", 524288}, {"stack_depth", 64},
           {"samples", 1234},   {"tracked_blocks", 10},     {"max_tracked_blocks", 65536},
           {"sites", 3},        {"max_sites", 16384},       {"dropped_samples", 0},
           {"dropped_sites", 0}};
  r["tracker"] = Json{
      {"bytes", 3 * 1024 * 1024}, {"heap_bytes", 1024 * 1024}, {"tables_bytes", 2 * 1024 * 1024}};
  r["profilers"] = Json::array();
  r["threads"] = 4;
  rsrtest::FakeServer server(socket_for(getpid()), answers({{"status", r}}));
  EXPECT_EQ(cmd_status(options(TargetMode::kPid), io_), kExitOk);
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("  command         svc --port 8080\n"));
  EXPECT_THAT(text, HasSubstr("(up 1h 02m)"));
  EXPECT_THAT(text, HasSubstr("  interval        512.0 KiB mean between samples\n"));
  EXPECT_THAT(text, HasSubstr("  tracked blocks  10 of 65,536\n"));
  EXPECT_THAT(text, HasSubstr("  total           3.00 MiB\n"));
  EXPECT_THAT(text, HasSubstr("  none active\n"));
  EXPECT_THAT(text, HasSubstr("RSR_STACK_DEPTH=900 is out of range"));
  // The settings table's order (monitoring switch first), unknown settings last.
  const size_t enabled = text.find("RSR_MEMORY_MONITORING_ENABLED");
  const size_t depth = text.find("RSR_STACK_DEPTH ");
  const size_t future = text.find("RSR_FUTURE_SETTING");
  EXPECT_LT(enabled, depth);
  EXPECT_LT(depth, future);
  EXPECT_NE(future, std::string::npos);
}

// A summary whose sites hold addresses of real code in this process, with this process's module
// map: what the preload sends.
Json summary_reply(pid_t pid) {
  volatile int sink = 0;
  void* plain = rsrtest::plain_function(&sink);
  void* inlined = rsrtest::outer_function(&sink);
  Json r = common(pid);
  r["rss_bytes"] = 50 * 1024 * 1024;
  r["peak_rss_bytes"] = 60 * 1024 * 1024;
  r["uptime_s"] = 90;
  r["heap"] = Json{{"live_bytes", 10 * 1024 * 1024},
                   {"live_blocks", 1000},
                   {"peak_live_bytes", 12 * 1024 * 1024},
                   {"allocations", 5000},
                   {"frees", 4000},
                   {"allocated_bytes", 20 * 1024 * 1024},
                   {"freed_bytes", 10 * 1024 * 1024}};
  r["rates"] = Json{{"window_s", 60},
                    {"allocations_per_s", 100},
                    {"frees_per_s", 90},
                    {"allocated_bytes_per_s", 4096},
                    {"live_bytes_per_s", 512}};
  r["sampling"] =
      Json{{"mode", "sampled"}, {"interval_bytes", 524288}, {"samples", 20}, {"sites", 2}};
  r["tracker"] = Json{{"bytes", 2 * 1024 * 1024}};
  r["growth_window_s"] = 300;
  const Json site = {
      {"id", 7},
      {"live_bytes", 8 * 1024 * 1024},
      {"live_blocks", 800},
      {"alloc_bytes", 9 * 1024 * 1024},
      {"alloc_blocks", 900},
      {"samples", 16},
      {"live_samples", 14},
      {"growth_bytes", 1024 * 1024},
      {"growth_bytes_per_s", 3500},
      {"frames",
       {hex(reinterpret_cast<uint64_t>(inlined)), hex(reinterpret_cast<uint64_t>(plain)), "0x10"}}};
  r["top_live"] = Json::array({site});
  r["top_growth"] = Json::array({site});
  Json modules = Json::array();
  for (void* p : {plain, reinterpret_cast<void*>(&summary_reply)}) {
    modules.push_back(rsrtest::module_json(rsrtest::module_of(p)));
  }
  r["modules"] = modules;
  return r;
}

TEST_F(CommandsTest, MemorySummaryJsonHasSymbolizedFrames) {
  const Json reply = summary_reply(getpid());
  rsrtest::FakeServer server(socket_for(getpid()), answers({{"summary", reply}}));
  EXPECT_EQ(cmd_memory_summary(options(TargetMode::kPid, OutputFormat::kJson), {5, 8}, io_),
            kExitOk);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(Json::parse(server.requests().at(0)), (Json{{"cmd", "summary"}, {"top", 5}}));
  EXPECT_EQ(out["heap"], reply["heap"]);  // everything else is passed through
  const Json& frames = out["top_live"][0]["frames"];
  ASSERT_EQ(frames.size(), 3u);

  EXPECT_EQ(frames[0]["address"], reply["top_live"][0]["frames"][0]);
  EXPECT_EQ(frames[0]["function"], "rsrtest::outer_function(int volatile*)");
  EXPECT_THAT(frames[0]["file"].get<std::string>(), HasSubstr("symbolizer_fixture.cc"));
  EXPECT_EQ(frames[0]["line"], rsrtest::outer_call_line);
  EXPECT_THAT(frames[0]["module"].get<std::string>(), HasSubstr("libsymfixture.so"));
  ASSERT_EQ(frames[0]["inlined"].size(), 1u);
  EXPECT_THAT(frames[0]["inlined"][0]["function"].get<std::string>(), HasSubstr("inlined_helper"));
  EXPECT_EQ(frames[0]["inlined"][0]["line"], rsrtest::inlined_call_line);

  EXPECT_EQ(frames[1]["function"], "rsrtest::plain_function(int volatile*)");
  EXPECT_EQ(frames[1]["line"], rsrtest::plain_call_line);
  EXPECT_TRUE(frames[1]["inlined"].empty());

  EXPECT_EQ(frames[2]["function"], "0x10");  // in no module: the bare address
  EXPECT_TRUE(frames[2]["file"].is_null());
  EXPECT_TRUE(frames[2]["module"].is_null());
  EXPECT_EQ(out["top_growth"][0]["frames"], frames);
}

TEST_F(CommandsTest, MemorySummaryText) {
  rsrtest::FakeServer server(socket_for(getpid()), answers({{"summary", summary_reply(getpid())}}));
  EXPECT_EQ(cmd_memory_summary(options(TargetMode::kPid), {20, 2}, io_), kExitOk);
  const std::string text = out_.str();
  EXPECT_THAT(text,
              HasSubstr("Memory summary for " + std::to_string(getpid()) + " (svc), up 1m 30s\n"));
  EXPECT_THAT(text, HasSubstr("  RSS           50.0 MiB (peak 60.0 MiB)\n"));
  EXPECT_THAT(text, HasSubstr("  Live heap     10.0 MiB in 1,000 blocks (peak 12.0 MiB)\n"));
  EXPECT_THAT(text, HasSubstr("Top call sites by live bytes (estimated from samples):\n"
                              "  1. 8.00 MiB live in 800 blocks, 9.00 MiB allocated in 900 blocks"
                              "  [site 7, 16 samples]\n"));
  EXPECT_THAT(text,
              HasSubstr("       #0 rsrtest::outer_function(int volatile*)  symbolizer_fixture.cc:" +
                        std::to_string(rsrtest::outer_call_line) +
                        "  (libsymfixture.so)\n"
                        "            inlined: rsrtest::inlined_helper"));
  EXPECT_THAT(text,
              HasSubstr("       #1 rsrtest::plain_function(int volatile*)  symbolizer_fixture.cc:" +
                        std::to_string(rsrtest::plain_call_line) + "  (libsymfixture.so)\n"));
  EXPECT_THAT(text, HasSubstr("       ... 1 more frames (--frames 0 shows all)\n"));
  EXPECT_THAT(text, HasSubstr("Top call sites by growth over the last 5m 00s:\n"
                              "  1. +1.00 MiB (+3.42 KiB/s), now 8.00 MiB live in 800 blocks"));
}

TEST_F(CommandsTest, AllReportsEachProcessAndCleansUpStaleSockets) {
  const pid_t a = getpid(), b = getppid();
  rsrtest::FakeServer sa(socket_for(a), answers({{"health", health_reply(a, true)}}));
  rsrtest::FakeServer sb(socket_for(b), answers({{"health", health_reply(b, false)}}));
  const pid_t dead = 2147480000;
  make_dead_socket(socket_for(dead));
  // And one in a service's directory below (systemd's RuntimeDirectory=rsrmem/%N).
  const std::string service_dir = socket_for(dead).substr(0, socket_for(dead).rfind('/')) + "/svc";
  ASSERT_EQ(mkdir(service_dir.c_str(), 0700), 0);
  const std::string dead_in_service = service_dir + "/2147480001.sock";
  make_dead_socket(dead_in_service);

  EXPECT_EQ(cmd_health(options(TargetMode::kAll, OutputFormat::kJson), false, io_), kExitNegative);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(out[std::to_string(a)]["status"], "healthy");
  EXPECT_EQ(out[std::to_string(b)]["status"], "degraded");
  EXPECT_EQ(out[std::to_string(dead)]["state"], "gone");
  EXPECT_THAT(err_.str(),
              HasSubstr("process 2147480000 is gone; removed stale socket " + socket_for(dead)));
  EXPECT_NE(access(socket_for(dead).c_str(), F_OK), 0);
  EXPECT_THAT(err_.str(), HasSubstr("removed stale socket " + dead_in_service));
  EXPECT_NE(access(dead_in_service.c_str(), F_OK), 0);
}

TEST_F(CommandsTest, AllTextHasOneBlockPerProcess) {
  const pid_t a = getpid(), b = getppid();
  rsrtest::FakeServer sa(socket_for(a), answers({{"health", health_reply(a, true)}}));
  rsrtest::FakeServer sb(socket_for(b), answers({{"health", health_reply(b, true)}}));
  EXPECT_EQ(cmd_health(options(TargetMode::kAll), false, io_), kExitOk);
  const std::string text = out_.str();
  const size_t first = text.find("== " + std::to_string(std::min(a, b)) + " (svc) ==");
  const size_t second = text.find("== " + std::to_string(std::max(a, b)) + " (svc) ==");
  EXPECT_NE(first, std::string::npos);
  EXPECT_NE(second, std::string::npos);
  EXPECT_LT(first, second);
}

TEST_F(CommandsTest, AllWithNoProcessesIsNotFound) {
  try {
    cmd_status(options(TargetMode::kAll), io_);
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("no monitored processes in " + dir_.path()));
  }
}

TEST_F(CommandsTest, ListShowsLiveProcessesAndRemovesStaleOnes) {
  Json hello = common(getpid());
  hello["cmdline"] = {"svc", "--port", "8080"};
  hello["uptime_s"] = 7300;
  hello["mode"] = "sampled";
  Json summary = common(getpid());
  summary["uptime_s"] = 7301;
  summary["rss_bytes"] = 120 * 1024 * 1024;
  summary["heap"] = Json{{"live_bytes", 80 * 1024 * 1024}, {"live_blocks", 5}};
  rsrtest::FakeServer server(socket_for(getpid()),
                             answers({{"hello", hello}, {"summary", summary}}));
  // The parent's pid is alive, but nothing listens on this socket: a reused pid.
  make_dead_socket(socket_for(getppid()));

  EXPECT_EQ(cmd_list(options(TargetMode::kAuto), io_), kExitOk);
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("PID  UPTIME      HEAP        RSS  MODE     COMMAND\n"));
  EXPECT_THAT(text, HasSubstr(std::to_string(getpid()) +
                              "  2h 01m  80.0 MiB  120.0 MiB  sampled  svc --port 8080\n"));
  EXPECT_THAT(text, HasSubstr("nothing listens on its socket any more"));
  EXPECT_NE(access(socket_for(getppid()).c_str(), F_OK), 0);
  EXPECT_EQ(Json::parse(server.requests().at(1)), (Json{{"cmd", "summary"}, {"top", 0}}));
}

TEST_F(CommandsTest, ListJsonAndEmptyDirectory) {
  EXPECT_EQ(cmd_list(options(TargetMode::kAuto, OutputFormat::kJson), io_), kExitOk);
  EXPECT_EQ(Json::parse(out_.str()), Json::array());
  std::ostringstream text;
  Io io{text, err_};
  EXPECT_EQ(cmd_list(options(TargetMode::kAuto), io), kExitOk);
  EXPECT_EQ(text.str(), "No monitored processes (socket directory " + dir_.path() + ").\n");
}

}  // namespace
