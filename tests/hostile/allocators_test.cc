// The program's own allocator: glibc, tcmalloc, tcmalloc_minimal, jemalloc and mimalloc, each
// preloaded after librsrmem.so, preloaded before it, and linked into the program. Every
// configuration must run the program exactly as without the library. With the library first (or
// the allocator linked in) the heap is counted exactly; with the allocator first the hooks are
// blind, and health and status must say so, naming the allocator and the fix.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 60000;
constexpr int64_t kHeldBytes = 8192 * 4096;

const std::string kLibDir = "/usr/lib/x86_64-linux-gnu/";

struct Allocator {
  const char* name;
  const char* library;  // "" for glibc
};

const Allocator kAllocators[] = {
    {"glibc", ""},
    {"tcmalloc", "libtcmalloc.so.4"},
    {"tcmalloc_minimal", "libtcmalloc_minimal.so.4"},
    {"jemalloc", "libjemalloc.so.2"},
    {"mimalloc", "libmimalloc.so.2"},
};

enum class Order { kLibraryFirst, kAllocatorFirst, kLinked };

struct Case {
  Allocator allocator;
  Order order;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  static const char* const kOrders[] = {"LibraryFirst", "AllocatorFirst", "Linked"};
  return std::string(info.param.allocator.name) + "_" + kOrders[static_cast<int>(info.param.order)];
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const Allocator& a : kAllocators) {
    out.push_back({a, Order::kLibraryFirst});
    if (a.library[0]) {
      out.push_back({a, Order::kAllocatorFirst});
      out.push_back({a, Order::kLinked});
    }
  }
  return out;
}

// LD_PRELOAD for the case: the library and the allocator in the case's order.
std::string preload_for(const Case& c) {
  if (!c.allocator.library[0] || c.order == Order::kLinked) return rt::preload_lib();
  const std::string alloc = kLibDir + c.allocator.library;
  return c.order == Order::kLibraryFirst ? rt::preload_lib() + ":" + alloc : alloc + ":" + rt::preload_lib();
}

std::string program_for(const Case& c) {
  if (c.order != Order::kLinked) return hostile::program("alloc_mix");
  return hostile::program(std::string("alloc_mix_") + c.allocator.name);
}

class Allocators : public ::testing::TestWithParam<Case> {};

TEST_P(Allocators, SmallProgramsRun) {
  const Case& c = GetParam();
  TempDir dir;
  for (const char* monitoring : {"true", "false"}) {
    for (const std::vector<std::string>& argv :
         {std::vector<std::string>{"/bin/true"}, std::vector<std::string>{"/bin/sh", "-c", "ls / >/dev/null"},
          std::vector<std::string>{"python3", "-c", "import json; print(len(json.dumps(list(range(10000)))))"}}) {
      Spawn s;
      s.argv = argv;
      s.preload_path = preload_for(c);
      s.socket_dir = dir.path();
      s.env["RSR_MEMORY_MONITORING_ENABLED"] = monitoring;
      const rt::RunResult r = rt::run(s, kTimeoutMs);
      EXPECT_TRUE(!r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0)
          << argv[0] << " with LD_PRELOAD=" << s.preload_path << " RSR_MEMORY_MONITORING_ENABLED="
          << monitoring << ": " << r.describe() << "\n" << r.err;
    }
  }
}

TEST_P(Allocators, ProgramRunsAndHealthTellsWhetherTheHooksSeeIt) {
  const Case& c = GetParam();
  TempDir dir;
  Spawn s;
  s.argv = {program_for(c)};
  s.preload_path = preload_for(c);
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.started());
  auto ready = p.read_until([](const std::string& l) { return l == "ready"; }, kTimeoutMs);
  ASSERT_TRUE(ready) << p.describe();
  EXPECT_NE(p.out().find("api checks failed: 0\nchild: 0\n"), std::string::npos) << p.out();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 10000)) << p.describe();

  const rt::Reply health = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"health"})");
  ASSERT_TRUE(health.served()) << health.describe();
  const auto& tracking = health.json["components"]["tracking"];
  const rt::Reply summary = rt::summary(dir.path(), p.pid());
  const int64_t live = rt::heap_field(summary, "live_bytes");
  if (c.order == Order::kAllocatorFirst) {
    EXPECT_EQ(health.json["status"], "degraded") << health.payload;
    EXPECT_EQ(tracking["status"], "degraded") << health.payload;
    const std::string detail = tracking.value("detail", "");
    EXPECT_NE(detail.find(c.allocator.library), std::string::npos) << detail;
    EXPECT_NE(detail.find("put librsrmem.so first in LD_PRELOAD"), std::string::npos) << detail;
    const rt::Reply status = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"status"})");
    EXPECT_EQ(status.json["tracking"]["status"], "degraded") << status.payload;
    EXPECT_NE(p.err().find("tracking degraded: malloc resolves to"), std::string::npos) << p.err();
  } else {
    EXPECT_EQ(tracking["status"], "ok") << health.payload;
    EXPECT_EQ(health.json["status"], "healthy") << health.payload;
    EXPECT_GE(live, kHeldBytes) << summary.payload;
    EXPECT_LT(live, kHeldBytes + (16 << 20)) << summary.payload;
    EXPECT_EQ(p.err().find("tracking degraded"), std::string::npos) << p.err();
  }

  ASSERT_TRUE(p.write("go\n"));
  auto done = p.read_until([](const std::string& l) { return l == "done"; }, kTimeoutMs);
  EXPECT_TRUE(done) << p.describe();
  const auto status = p.wait(kTimeoutMs);
  ASSERT_TRUE(status) << p.describe();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << rt::describe_status(*status) << p.err();
}

INSTANTIATE_TEST_SUITE_P(Matrix, Allocators, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace

namespace {

// Starts `program` under the library alone and returns health's tracking component once
// `ready`, after waiting `settle_ms` (the run-time check runs once a second).
nlohmann::json tracking_of(const std::string& program, int settle_ms, std::string* err) {
  TempDir dir;
  Spawn s;
  s.argv = {hostile::program(program)};
  s.socket_dir = dir.path();
  Process p(s);
  EXPECT_TRUE(p.started());
  EXPECT_TRUE(p.read_until([](const std::string& l) { return l == "ready"; }, kTimeoutMs)) << p.describe();
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 10000)) << p.describe();
  usleep(static_cast<useconds_t>(settle_ms) * 1000);
  const rt::Reply health = rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"health"})");
  EXPECT_TRUE(health.served()) << health.describe();
  p.write("go\n");
  const auto status = p.wait(kTimeoutMs);
  EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << p.describe();
  *err = p.err();
  return health.json.value("components", nlohmann::json::object()).value("tracking", nlohmann::json::object());
}

TEST(Blind, AnAllocatorLinkedIntoTheProgramIsNamed) {
  std::string err;
  const auto tracking = tracking_of("alloc_mix_static_jemalloc", 0, &err);
  EXPECT_EQ(tracking.value("status", ""), "degraded") << tracking.dump();
  EXPECT_NE(tracking.value("detail", "").find("malloc resolves to the program itself"), std::string::npos)
      << tracking.dump();
  EXPECT_NE(err.find("tracking degraded"), std::string::npos) << err;
}

TEST(Blind, MemoryTheHooksCannotSeeIsNoticedAtRunTime) {
  std::string err;
  const auto tracking = tracking_of("own_heap", 2500, &err);
  EXPECT_EQ(tracking.value("status", ""), "degraded") << tracking.dump();
  EXPECT_NE(tracking.value("detail", "").find("anonymous memory grew by"), std::string::npos) << tracking.dump();
  EXPECT_NE(err.find("tracking degraded"), std::string::npos) << err;
}

TEST(Blind, ANonPieProgramHoldingMallocsAddressIsSeen) {
  std::string err;
  const auto tracking = tracking_of("malloc_pointer", 0, &err);
  EXPECT_EQ(tracking.value("status", ""), "ok") << tracking.dump();
  EXPECT_EQ(err.find("tracking degraded"), std::string::npos) << err;
}

// The same check stays quiet on a program whose heap the hooks do see (alloc_mix holds 32 MiB
// in 8,192 mallocs; its anonymous growth is what it allocated).
TEST(Blind, AProgramWhoseHeapIsSeenStaysOk) {
  std::string err;
  const auto tracking = tracking_of("alloc_mix", 2500, &err);
  EXPECT_EQ(tracking.value("status", ""), "ok") << tracking.dump();
}

}  // namespace
