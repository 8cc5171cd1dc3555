// Per-site estimates from the sampler, end to end: a program with two call sites of known size
// runs under the preload, and the live and allocated estimates rsrmemctl reports for each site
// (found by function name in the symbolized stacks) must match what the program holds.
//
// Tolerance. With mean interval T, a site of N blocks of s bytes has a Horvitz-Thompson estimate
// whose standard deviation is sqrt(N s^2 (1-p)/p), p = 1-exp(-s/T) (sampler.h). The assertions
// allow 5 standard deviations plus 1% (rounding of the integer weights): a correct estimator
// fails one of the four checks with probability below 3e-6 per run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "harness.h"

namespace {

constexpr double kInterval = 16384;
constexpr int kLineMs = 20000;

struct Held {
  double bytes = 0;
  double blocks = 0;
};

double sigma(const Held& h) {
  const double s = h.bytes / h.blocks;
  const double p = -std::expm1(-s / kInterval);
  return std::sqrt(h.blocks * s * s * (1 - p) / p);
}

// The sites whose stacks have `function` among their frames (their own or inlined), from
// `rsrmemctl memory-summary --format json`.
std::vector<const nlohmann::json*> sites_with(const nlohmann::json& summary, const std::string& function) {
  std::vector<const nlohmann::json*> sites;
  for (const auto& site : summary.at("top_live")) {
    for (const auto& frame : site.at("frames")) {
      if (frame.value("function", "").find(function) != std::string::npos) {
        sites.push_back(&site);
        break;
      }
    }
  }
  return sites;
}

// The first of them.
const nlohmann::json* find_site(const nlohmann::json& summary, const std::string& function) {
  const std::vector<const nlohmann::json*> sites = sites_with(summary, function);
  return sites.empty() ? nullptr : sites.front();
}

nlohmann::json ctl_summary(const std::string& dir, pid_t pid) {
  const std::string cmd = rt::ctl_path() + " --pid " + std::to_string(pid) +
                          " memory-summary --top 20 --format json";
  std::string out;
  if (FILE* f = popen(("RSR_SOCKET_DIR=" + dir + " " + cmd).c_str(), "r")) {
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    pclose(f);
  }
  return nlohmann::json::parse(out, nullptr, false);
}

void expect_close(double estimate, double truth, double sd, const char* what) {
  const double tolerance = 5 * sd + 0.01 * truth;
  EXPECT_NEAR(estimate, truth, tolerance) << what << ": estimate " << estimate << ", truth " << truth
                                          << ", sd " << sd;
}

// The "held <site> <bytes> <blocks>" lines a program prints before "ready".
std::map<std::string, Held> read_held(rt::Process& p) {
  std::map<std::string, Held> held;
  for (;;) {
    auto line = p.read_line(kLineMs);
    if (!line) {
      ADD_FAILURE() << p.describe();
      return held;
    }
    if (*line == "ready") return held;
    std::istringstream in(*line);
    std::string word, site;
    Held h;
    in >> word >> site >> h.bytes >> h.blocks;
    held[site] = h;
  }
}

// One of the test programs under the preload, its socket in `dir`, with one setting.
rt::Spawn program_in(const rt::TempDir& dir, const char* program, const char* setting, const char* value) {
  rt::Spawn s;
  s.argv = {rt::program(program)};
  s.socket_dir = dir.path();
  s.env[setting] = value;
  return s;
}

TEST(SiteEstimates, MatchWhatEachCallSiteHolds) {
  rt::TempDir dir;
  rt::Process p(program_in(dir, "sites", "RSR_SAMPLE_INTERVAL_BYTES", "16384"));
  ASSERT_TRUE(p.started());
  const std::map<std::string, Held> held = read_held(p);
  ASSERT_EQ(held.size(), 2u);
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kLineMs));

  nlohmann::json summary = ctl_summary(dir.path(), p.pid());
  ASSERT_FALSE(summary.is_discarded());
  for (const char* fn : {"small_blocks", "big_blocks"}) {
    const nlohmann::json* site = find_site(summary, fn);
    ASSERT_NE(site, nullptr) << fn << " not among the top sites: " << summary.dump().substr(0, 2000);
    const Held& h = held.at(fn);
    expect_close(site->at("live_bytes").get<double>(), h.bytes, sigma(h), fn);
    expect_close(site->at("alloc_bytes").get<double>(), h.bytes, sigma(h), fn);
    // The block count's deviation is the byte deviation divided by the block size.
    expect_close(site->at("live_blocks").get<double>(), h.blocks, sigma(h) / (h.bytes / h.blocks), fn);
  }

  // Freed blocks leave their site: small_blocks drops to nothing live, its total stays.
  ASSERT_TRUE(p.write("free\n"));
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "freed"; }, kLineMs));
  summary = ctl_summary(dir.path(), p.pid());
  const nlohmann::json* small = find_site(summary, "small_blocks");
  if (small) {  // listed only while live
    EXPECT_EQ(small->at("live_bytes").get<int64_t>(), 0);
  }
  const nlohmann::json* big = find_site(summary, "big_blocks");
  ASSERT_NE(big, nullptr);
  expect_close(big->at("live_bytes").get<double>(), held.at("big_blocks").bytes, sigma(held.at("big_blocks")),
               "big_blocks after the small ones were freed");

  // Every one of those stacks was walked by the library's own walker: none left to libunwind.
  const rt::Reply status = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"status"})");
  ASSERT_TRUE(status.served()) << status.describe();
  const nlohmann::json& sampling = status.json.at("sampling");
  EXPECT_GT(sampling.at("samples").get<int64_t>(), 100);
  EXPECT_GT(sampling.at("unwind_rules").get<int64_t>(), 3);
  EXPECT_EQ(sampling.at("stacks_left_to_libunwind").get<int64_t>(), 0);
  EXPECT_FALSE(rt::maps_contain(p.pid(), "libunwind")) << "libunwind loaded though no stack needed it";
}

// Detailed mode counts every allocation at its stack. One allocating function reached from two
// callers at the same stack pointer: the thread's stack memo (a stack seen before is not walked
// again) must tell the paths apart by what lies further up the stack.
TEST(SiteEstimates, DetailedModeKeepsStacksThatDifferOnlyFurtherUpApart) {
  rt::TempDir dir;
  rt::Process p(program_in(dir, "two_paths", "RSR_MEMORY_DETAILED_TRACKING", "true"));
  ASSERT_TRUE(p.started());
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kLineMs));
  ASSERT_TRUE(p.write("go\n"));
  const std::map<std::string, Held> held = read_held(p);
  ASSERT_EQ(held.size(), 2u);
  const nlohmann::json summary = ctl_summary(dir.path(), p.pid());
  ASSERT_FALSE(summary.is_discarded());
  for (const char* fn : {"path_a", "path_b"}) {
    Held seen;  // over every stack through `fn` (main may call it from more than one place)
    for (const nlohmann::json* site : sites_with(summary, fn)) {
      seen.blocks += site->at("live_blocks").get<double>();
      seen.bytes += site->at("live_bytes").get<double>();
    }
    const Held& h = held.at(fn);
    EXPECT_EQ(seen.blocks, h.blocks) << fn << ": " << summary.dump().substr(0, 3000);
    EXPECT_EQ(seen.bytes, h.bytes) << fn << ": " << summary.dump().substr(0, 3000);
  }
  p.write("exit\n");
  EXPECT_TRUE(p.wait(kLineMs));
}

// A stack the walker leaves to libunwind (a signal handler's, across the kernel's signal frame)
// has libunwind loaded at the control thread's next turn; the stacks after that are whole.
TEST(SiteEstimates, LibunwindIsLoadedForTheStacksTheWalkerLeavesToIt) {
  rt::TempDir dir;
  rt::Spawn s;
  s.argv = {rt::program("handler_stacks")};
  s.socket_dir = dir.path();
  s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "4096";  // every 64 KiB block is sampled
  rt::Process p(s);
  ASSERT_TRUE(p.started());
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "ready"; }, kLineMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kLineMs));
  EXPECT_FALSE(rt::maps_contain(p.pid(), "libunwind"));
  auto raise_signal = [&] {
    ASSERT_TRUE(p.write("signal\n"));
    ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "done"; }, kLineMs)) << p.describe();
  };
  raise_signal();
  bool loaded = false;
  for (int i = 0; i < 100 && !loaded; ++i) {
    loaded = rt::maps_contain(p.pid(), "libunwind");
    if (!loaded) usleep(50 * 1000);
  }
  EXPECT_TRUE(loaded) << "libunwind not loaded 5 s after a stack asked for it";
  const rt::Reply status = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"status"})");
  ASSERT_TRUE(status.served()) << status.describe();
  EXPECT_GE(status.json.at("sampling").at("stacks_left_to_libunwind").get<int64_t>(), 1);
  for (int i = 0; i < 4; ++i) raise_signal();
  const nlohmann::json summary = ctl_summary(dir.path(), p.pid());
  const nlohmann::json* site = find_site(summary, "on_signal");
  ASSERT_NE(site, nullptr) << "no site with the handler's frame: " << summary.dump().substr(0, 2000);
  // The handler's stack goes on past the signal frame to main.
  bool reaches_main = false;
  for (const auto& frame : site->at("frames")) reaches_main |= frame.value("function", "") == "main";
  EXPECT_TRUE(reaches_main) << site->dump(2);
}

}  // namespace
