// What the library reports about the heap and itself: exact live figures, call-site frames,
// the effective configuration and its warnings.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace {

using rt::heap_field;
using rt::Process;
using rt::Reply;
using rt::Spawn;
using rt::summary;
using rt::TempDir;

constexpr int kLineMs = 15000;
constexpr int kSocketMs = 10000;

// ---------------------------------------------------------------------------------------------
// Exact live heap: the library's figures move by exactly what the program holds.

class LiveBytes : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(LiveBytes, DeltaEqualsWhatTheProgramHolds) {
  const auto [with_payload, detailed] = GetParam();
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("live_bytes")};
  if (with_payload) s.argv.push_back(rt::program("libpayload.so"));
  s.socket_dir = dir.path();
  s.env["RSR_MEMORY_DETAILED_TRACKING"] = detailed ? "true" : "false";
  Process p(s);
  ASSERT_TRUE(p.started());
  auto line = p.read_line(kLineMs);
  ASSERT_TRUE(line && *line == "ready") << p.describe();
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();

  const Reply q0 = summary(dir.path(), p.pid());
  ASSERT_TRUE(q0.served()) << q0.describe();

  ASSERT_TRUE(p.write("hold\n"));
  line = p.read_line(kLineMs);
  ASSERT_TRUE(line) << p.describe();
  unsigned long long bytes = 0;
  int blocks = 0;
  ASSERT_EQ(sscanf(line->c_str(), "held %llu %d", &bytes, &blocks), 2) << *line;
  ASSERT_GT(blocks, 1000);

  const Reply q1 = summary(dir.path(), p.pid());
  ASSERT_TRUE(q1.served()) << q1.describe();
  EXPECT_EQ(heap_field(q1, "live_bytes") - heap_field(q0, "live_bytes"), static_cast<int64_t>(bytes))
      << "live_bytes moved by something other than the usable sizes of the held blocks";
  EXPECT_EQ(heap_field(q1, "live_blocks") - heap_field(q0, "live_blocks"), blocks);
  // Totals are consistent with the live figures.
  EXPECT_EQ((heap_field(q1, "allocated_bytes") - heap_field(q1, "freed_bytes")) -
                (heap_field(q0, "allocated_bytes") - heap_field(q0, "freed_bytes")),
            static_cast<int64_t>(bytes));
  EXPECT_EQ((heap_field(q1, "allocations") - heap_field(q1, "frees")) -
                (heap_field(q0, "allocations") - heap_field(q0, "frees")),
            blocks);
  EXPECT_GT(heap_field(q1, "allocations") - heap_field(q0, "allocations"), 30000) << "the churn was not counted";
  EXPECT_GE(heap_field(q1, "peak_live_bytes"), heap_field(q1, "live_bytes"));

  ASSERT_TRUE(p.write("free\n"));
  line = p.read_line(kLineMs);
  ASSERT_TRUE(line && *line == "freed") << p.describe();
  const Reply q2 = summary(dir.path(), p.pid());
  ASSERT_TRUE(q2.served()) << q2.describe();
  EXPECT_EQ(heap_field(q2, "live_bytes"), heap_field(q0, "live_bytes"));
  EXPECT_EQ(heap_field(q2, "live_blocks"), heap_field(q0, "live_blocks"));
  EXPECT_GE(heap_field(q2, "peak_live_bytes"), heap_field(q1, "live_bytes"));

  ASSERT_TRUE(p.write("exit\n"));
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st) << p.describe();
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Cases, LiveBytes,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "cxx_payload" : "c_only") +
                                  (std::get<1>(info.param) ? "_detailed" : "_sampled");
                         });


// ---------------------------------------------------------------------------------------------
// Call sites: frames are return addresses, the caller of the allocation function first, inside
// a module the reply lists.

struct Module {
  std::string path;
  uint64_t start = 0, end = 0;
};

uint64_t hex(const nlohmann::json& v) { return std::strtoull(v.get<std::string>().c_str(), nullptr, 16); }

std::string module_of(const std::vector<Module>& mods, uint64_t addr) {
  for (const auto& m : mods)
    if (addr >= m.start && addr < m.end) return m.path;
  return "(no module)";
}

std::string base_name(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

TEST(CallSites, FirstFrameIsTheCallerOfTheAllocationFunction) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("live_bytes"), rt::program("libpayload.so")};
  s.socket_dir = dir.path();
  s.env["RSR_MEMORY_DETAILED_TRACKING"] = "true";
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs));
  ASSERT_TRUE(p.write("hold\n"));
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();

  const Reply r = summary(dir.path(), p.pid(), 50);
  ASSERT_TRUE(r.served()) << r.describe();
  ASSERT_TRUE(r.json.contains("modules") && r.json["modules"].is_array()) << r.describe();
  std::vector<Module> mods;
  for (const auto& m : r.json["modules"]) mods.push_back({m.value("path", ""), hex(m["start"]), hex(m["end"])});
  ASSERT_TRUE(r.json.contains("top_live") && r.json["top_live"].is_array()) << r.describe();

  // The held blocks of 256 KiB and more were allocated by live_bytes itself (malloc, calloc,
  // realloc) or by the C++ payload (new[]): those are the only acceptable first frames.
  int big_sites = 0, payload_sites = 0;
  for (const auto& site : r.json["top_live"]) {
    if (site.value("live_bytes", int64_t{0}) < 256 * 1024) continue;
    ++big_sites;
    ASSERT_TRUE(site.contains("frames") && !site["frames"].empty()) << site.dump();
    const std::string first = base_name(module_of(mods, hex(site["frames"][0])));
    EXPECT_TRUE(first == "live_bytes" || first == "libpayload.so")
        << "first frame in " << first << " (library or allocator frames were not trimmed): " << site.dump();
    if (first == "libpayload.so") ++payload_sites;
    for (const auto& f : site["frames"]) {
      const std::string m = module_of(mods, hex(f));
      EXPECT_EQ(base_name(m).find("librsrmem"), std::string::npos) << "a preload frame is reported: " << site.dump();
    }
  }
  EXPECT_GE(big_sites, 5) << r.json["top_live"].dump().substr(0, 3000);
  EXPECT_GE(payload_sites, 1) << "operator new[] from the dlopen'ed C++ object is not attributed to it";
  p.write("exit\n");
  EXPECT_TRUE(p.wait(kLineMs));
}

// ---------------------------------------------------------------------------------------------
// Configuration as the running library sees it.

TEST(Status, EffectiveConfigurationAndOneWarningPerBadValue) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  s.env["RSR_LEAK_CHECK_INTERVAL"] = "soon";
  s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "64K  # small";
  s.env["RSR_MEMORY_HEADER_PREFIX"] = "X-Test-Mem";
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs));
  const Reply r = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"status"})");
  ASSERT_TRUE(r.served()) << r.describe();
  const auto& cfg = r.json["config"];
  ASSERT_TRUE(cfg.is_object()) << r.describe();
  EXPECT_EQ(cfg.value("RSR_LEAK_CHECK_INTERVAL", ""), "300");
  EXPECT_EQ(cfg.value("RSR_SAMPLE_INTERVAL_BYTES", ""), "65536");
  EXPECT_EQ(cfg.value("RSR_MEMORY_HEADER_PREFIX", ""), "X-Test-Mem");
  EXPECT_EQ(cfg.value("RSR_LEAK_GROWTH_THRESHOLD", ""), "0.2");
  EXPECT_EQ(cfg.value("RSR_PROFILING_OUTPUT_DIR", ""), "/tmp/rsr_memory_profiles");
  EXPECT_EQ(cfg.value("RSR_SOCKET_DIR", ""), dir.path());
  EXPECT_EQ(r.json["sampling"].value("interval_bytes", int64_t{0}), 65536);
  EXPECT_EQ(r.json["sampling"].value("mode", ""), "sampled");
  ASSERT_TRUE(r.json["config_warnings"].is_array()) << r.describe();
  ASSERT_EQ(r.json["config_warnings"].size(), 1u) << r.json["config_warnings"].dump();
  const std::string w = r.json["config_warnings"][0].get<std::string>();
  EXPECT_NE(w.find("RSR_LEAK_CHECK_INTERVAL"), std::string::npos) << w;
  EXPECT_NE(w.find("soon"), std::string::npos) << w;
  EXPECT_NE(w.find("300"), std::string::npos) << w;

  p.close_stdin();
  ASSERT_TRUE(p.wait(kLineMs));
  // Reported once on stderr too (and nothing about the valid settings).
  size_t lines = 0, pos = 0;
  while ((pos = p.err().find("RSR_LEAK_CHECK_INTERVAL", pos)) != std::string::npos) ++lines, ++pos;
  EXPECT_EQ(lines, 1u) << p.err();
  EXPECT_EQ(p.err().find("RSR_SAMPLE_INTERVAL_BYTES"), std::string::npos) << p.err();
}

TEST(Status, DetailedModeIsReported) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  s.env["RSR_MEMORY_DETAILED_TRACKING"] = "yes";
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
  EXPECT_EQ(hello.json.value("mode", ""), "detailed") << hello.describe();
  const Reply st = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"status"})");
  EXPECT_EQ(st.json["config"].value("RSR_MEMORY_DETAILED_TRACKING", ""), "true") << st.describe();
  EXPECT_TRUE(st.json["config_warnings"].empty()) << st.describe();
}

}  // namespace
