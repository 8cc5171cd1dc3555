// rsrmemctl against hostile control sockets: the real binary, with --timeout 1, talks to fake
// servers that drip their reply a byte at a time, declare a reply of 256 MiB, send garbage,
// JSON nested a million deep or ten million values wide, never answer, or name FIFOs and
// devices as their modules. Every command that talks to a process must end within the timeout
// and a little slack (exit 4 and a clear message, or its report with the frames unresolved),
// with bounded memory, and never crash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "client.h"
#include "ctl_run.h"
#include "elf_text.h"
#include "fake_server.h"

namespace {

using hostile::hex;
using rsr::ctl::Json;
using rsrtest::FakeServer;
using ::testing::HasSubstr;

constexpr double kTimeoutS = 1;
// Start-up, the timeout, the watchdog's grace and a loaded 2-core CI machine.
constexpr double kWithinS = kTimeoutS + 4;
constexpr long kMaxRssKb = 128 * 1024;

std::string header(rsr::proto::Kind kind, uint32_t length) {
  uint8_t h[rsr::proto::kHeaderBytes];
  rsr::proto::encode_header(kind, length, h);
  return std::string(reinterpret_cast<char*>(h), sizeof h);
}

// Holds the connection until the peer closes it, `stopping`, or `seconds` passed.
void linger(int c, const std::atomic<bool>& stopping, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!stopping && std::chrono::steady_clock::now() < until) {
    pollfd p{c, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 10) > 0) {
      char b;
      if (p.revents & (POLLHUP | POLLRDHUP | POLLERR) || recv(c, &b, 1, MSG_DONTWAIT) == 0) return;
    }
  }
}

// Every command that talks to one process, as an operator types it.
const std::vector<std::vector<std::string>> kCommands = {
    {"status"},
    {"health-check"},
    {"memory-summary"},
    {"memory-summary", "--format", "json"},
    {"check-leaks"},
    {"metrics"},
    {"update-metrics"},
    {"start-profiling", "--duration=10s"},
    {"stop-profiling"},
};

class HostileReplies : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = hostile::ctl_binary();
    if (ctl_.empty()) GTEST_SKIP() << "RSRMEMCTL not set (run through meson test)";
  }

  std::string socket() const { return dir_.path() + "/1.sock"; }

  hostile::Outcome run(const std::vector<std::string>& command, double timeout_s = kTimeoutS) {
    std::vector<std::string> args = {ctl_, "--socket", socket(), "--timeout",
                                     std::to_string(timeout_s)};
    args.insert(args.end(), command.begin(), command.end());
    return hostile::run(args);
  }

  // Every command against `conversation`: each must end within kWithinS with one of `codes`,
  // under kMaxRssKb, saying `err` on stderr.
  void every_command(const std::string& label, const FakeServer::Conversation& conversation,
                     const std::vector<int>& codes, const std::string& err,
                     long max_rss_kb = kMaxRssKb) {
    FakeServer server(socket(), conversation);
    double worst_s = 0;
    long worst_kb = 0;
    for (const auto& command : kCommands) {
      std::string cmd;
      for (const std::string& w : command) cmd += " " + w;
      const hostile::Outcome r = run(command);
      worst_s = std::max(worst_s, r.seconds);
      worst_kb = std::max(worst_kb, r.max_rss_kb);
      const std::string where = label + ": rsrmemctl" + cmd + ": " + r.describe();
      EXPECT_FALSE(r.killed) << where;
      EXPECT_LT(r.seconds, kWithinS) << where;
      EXPECT_LT(r.max_rss_kb, max_rss_kb) << where;
      EXPECT_THAT(r.code, ::testing::AnyOfArray(codes)) << where;
      EXPECT_THAT(r.err, HasSubstr(err)) << where;
      if (r.killed) break;
    }
    std::cout << "[measure] " << label << ": worst " << worst_s << " s, peak RSS "
              << static_cast<double>(worst_kb) / 1024 << " MB over " << kCommands.size()
              << " commands\n";
  }

  std::string ctl_;
  rsrtest::TempDir dir_;
};

TEST_F(HostileReplies, SlowDrip) {
  every_command("slow drip", [](int c, const std::string&, const std::atomic<bool>& stopping) {
    if (!FakeServer::send_all(c, header(rsr::proto::Kind::kResponse, 4096) + "{")) return;
    while (!stopping && FakeServer::send_all(c, " ")) linger(c, stopping, 0.05);
  }, {4}, "timed out");
}

TEST_F(HostileReplies, NeverAnswers) {
  every_command("never answers", [](int c, const std::string&, const std::atomic<bool>& stopping) {
    linger(c, stopping, 30);
  }, {4}, "timed out");
}

TEST_F(HostileReplies, DeclaresTheLargestFrame) {
  every_command("declares 256 MiB", [](int c, const std::string&, const std::atomic<bool>& stopping) {
    if (FakeServer::send_all(c, header(rsr::proto::Kind::kResponse, rsr::proto::kMaxResponseBytes)))
      linger(c, stopping, 30);
  }, {4}, "MiB");
}

TEST_F(HostileReplies, DeclaresMuchAndClosesEarly) {
  // What arrived is kept, not what was announced.
  every_command("declares 60 MiB, sends 1 KiB", [](int c, const std::string&, const std::atomic<bool>&) {
    FakeServer::send_all(c, header(rsr::proto::Kind::kResponse, 60u << 20) + std::string(1024, ' '));
  }, {4}, "truncated reply", 40 * 1024);
}

TEST_F(HostileReplies, Garbage) {
  every_command("garbage", [](int c, const std::string&, const std::atomic<bool>&) {
    FakeServer::send_all(c, rsrtest::reply("{\"ok\": true, \"pid\": tru\x01\x02 garbage"));
  }, {4}, "not valid JSON");
}

TEST_F(HostileReplies, NotAFrameAtAll) {
  every_command("not a frame", [](int c, const std::string&, const std::atomic<bool>&) {
    FakeServer::send_all(c, "HTTP/1.1 400 Bad Request\r\n\r\n");
  }, {4}, "bad reply");
}

TEST_F(HostileReplies, DeeplyNestedJson) {
  const size_t depth = 1000000;
  const std::string body =
      R"({"ok":true,"service":"svc","top_live":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  every_command("JSON nested a million deep", [body](int c, const std::string&, const std::atomic<bool>&) {
    FakeServer::send_all(c, rsrtest::reply(body));
  }, {4}, "nested");
}

TEST_F(HostileReplies, TenMillionValues) {
  // Sent in pieces as it is made: this process stays small, so the child's peak RSS (which
  // counts what it was forked from) is its own.
  every_command("ten million values", [](int c, const std::string&, const std::atomic<bool>&) {
    const std::string head = R"({"ok":true,"service":"svc","modules":[{})", tail = "]}";
    std::string piece;
    for (int i = 0; i < 65536; ++i) piece += ",{}";
    const size_t pieces = 10000000 / 65536;
    if (!FakeServer::send_all(c, header(rsr::proto::Kind::kResponse,
                                        static_cast<uint32_t>(head.size() + pieces * piece.size() +
                                                              tail.size())) +
                                     head))
      return;
    for (size_t i = 0; i < pieces; ++i)
      if (!FakeServer::send_all(c, piece)) return;
    FakeServer::send_all(c, tail);
  }, {4}, "values");
}

// A reply that passes every check but names a FIFO, a symlink to it and a device as the
// modules its frames lie in: the frames stay unresolved, and the command ends.
TEST_F(HostileReplies, ModulesThatAreNotFiles) {
  const std::string fifo = dir_.path() + "/libfifo.so";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string link = dir_.path() + "/liblink.so";
  ASSERT_EQ(symlink(fifo.c_str(), link.c_str()), 0);
  auto module = [](const std::string& path, int k) {
    char range[3][24];
    std::snprintf(range[0], sizeof range[0], "0x%x", 0x400000 + k * 0x100000);
    std::snprintf(range[1], sizeof range[1], "0x%x", 0x400000 + (k + 1) * 0x100000);
    return Json{{"path", path}, {"build_id", ""}, {"base", range[0]}, {"start", range[0]},
                {"end", range[1]}, {"loaded", true}};
  };
  const Json frames = Json::array({"0x401000", "0x501000", "0x601000"});
  const Json site = {{"id", 1}, {"live_bytes", 4 << 20}, {"live_blocks", 4}, {"alloc_bytes", 8 << 20},
                     {"alloc_blocks", 8}, {"samples", 4}, {"growth_bytes", 4 << 20},
                     {"growth_bytes_per_s", 1000}, {"frames", frames}};
  Json reply = {{"ok", true}, {"service", "svc"}, {"program", "/usr/bin/svc"}};
  reply["modules"] = Json::array({module(fifo, 0), module(link, 1), module("/dev/zero", 2)});
  reply["top_live"] = Json::array({site});
  reply["top_growth"] = Json::array({site});
  reply["top_sites"] = 20;
  reply["indicators"] = Json::array({Json{{"type", "site_growth"}, {"severity", "HIGH"},
                                          {"window_s", 600}, {"from_bytes", 1 << 20},
                                          {"to_bytes", 4 << 20}, {"site", site}}});
  const std::string body = reply.dump();
  every_command("modules that are FIFOs and devices",
                [body](int c, const std::string&, const std::atomic<bool>&) {
                  FakeServer::send_all(c, rsrtest::reply(body));
                },
                {0, 1}, "");
  // memory-summary and check-leaks name what they could not read.
  FakeServer server(socket(), [body](const std::string&) { return rsrtest::reply(body); });
  for (const char* cmd : {"memory-summary", "check-leaks"}) {
    const hostile::Outcome r = run({cmd});
    EXPECT_THAT(r.out, HasSubstr(fifo + ": not a regular file")) << cmd << ": " << r.describe();
    EXPECT_THAT(r.out, HasSubstr("/dev/zero: not a regular file")) << cmd << ": " << r.describe();
  }
}

// Local work on a reply that takes longer than --timeout (here: symbolizing 256,000 distinct
// addresses in rsrmemctl's own code, about 2 s of work here; --timeout 0.5 leaves a wide margin
// on a faster machine) ends when the timeout does: exit 4 and "timed out", not the full report
// seconds later.
TEST_F(HostileReplies, WorkOnTheReplyIsBoundedByTheTimeout) {
  const hostile::Text text = hostile::text_of(ctl_);
  ASSERT_GT(text.size, 1u << 16) << "no .text in " << ctl_;
  Json sites = Json::array();
  uint64_t next = text.address;
  for (int id = 1; id <= 1000; ++id) {
    Json frames = Json::array();
    for (int k = 0; k < 256; ++k) {
      frames.push_back(hex(next));
      next += text.size / 256000;
    }
    sites.push_back(Json{{"id", id}, {"live_bytes", 4096}, {"live_blocks", 1}, {"samples", 1},
                         {"frames", frames}});
  }
  Json reply = {{"ok", true}, {"service", "svc"}, {"top_live", sites}, {"top_growth", Json::array()}};
  reply["modules"] = Json::array({Json{{"path", ctl_}, {"build_id", ""}, {"base", "0x0"},
                                       {"start", hex(text.address)},
                                       {"end", hex(text.address + text.size)}, {"loaded", true}}});
  const std::string body = reply.dump();
  FakeServer server(socket(), [body](const std::string&) { return rsrtest::reply(body); });
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"memory-summary"}, {"memory-summary", "--format", "json"}}) {
    const hostile::Outcome r = run(command, 0.5);
    std::cout << "[measure] symbolizing 256,000 frames, --timeout 0.5: " << r.describe() << "\n";
    EXPECT_EQ(r.code, 4) << r.describe();
    EXPECT_LT(r.seconds, kWithinS) << r.describe();
    EXPECT_THAT(r.err, HasSubstr("timed out after 0.5 s (--timeout 0.5)")) << r.describe();
  }
  // With time enough, the same reply is worked through.
  const hostile::Outcome r = run({"memory-summary"}, 60);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_LT(r.max_rss_kb, 512 * 1024) << r.describe();  // 128 MiB of names at most, and the reply
  std::cout << "[measure] symbolizing 256,000 frames, --timeout 60: " << r.describe() << "\n";
}

}  // namespace
