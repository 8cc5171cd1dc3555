// Daemons give up every descriptor they did not open (close_range, a close() loop, or dup2()
// over every number) and then open their own files. The library's descriptors are then gone or
// someone else's: it must never write to, truncate or close what now has their numbers. Here a
// profiling capture is running, samples are taken, and libunwind (loaded for the stacks of a
// signal handler, which the library's walker leaves to it) validates addresses through its pipe
// while the program writes 4,000 records to its own file: every record must be intact, and the
// capture must end as a write error, readable.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

constexpr int kTimeoutMs = 60000;

class Daemon : public ::testing::TestWithParam<const char*> {};

// The one finished capture file in `dir` (no .part), or "" after the timeout.
std::string wait_for_capture(const std::string& dir, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    for (const std::string& name : rt::list_dir(dir))
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".bin") == 0) return dir + "/" + name;
    usleep(100 * 1000);
  }
  return "";
}

TEST_P(Daemon, OwnFileIntactAndCaptureEndsAsWriteError) {
  TempDir dir, out("rsrcaptures");
  Spawn s;
  s.argv = {hostile::program("closeall_writer"), GetParam(), dir / "data.bin"};
  s.socket_dir = dir.path();
  s.env["RSR_PROFILING_ENABLED"] = "true";
  s.env["RSR_PROFILING_OUTPUT_DIR"] = out.path();
  s.env["RSR_SAMPLE_INTERVAL_BYTES"] = "4096";
  Process p(s);
  ASSERT_TRUE(p.started());
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "ready"; }, kTimeoutMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 10000)) << p.describe();
  EXPECT_TRUE(rt::maps_contain(p.pid(), "libunwind")) << "the signal handler's stacks did not need libunwind";
  const rt::Reply started =
      rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"start_profiling","duration_s":30})");
  ASSERT_TRUE(started.served()) << started.describe();

  ASSERT_TRUE(p.write("go\n"));
  const auto line = p.read_until([](const std::string& l) { return l.rfind("records ", 0) == 0; }, kTimeoutMs);
  if (!line) {
    const auto status = p.wait(5000);
    FAIL() << "no records line; " << (status ? rt::describe_status(*status) : "still running") << "\n" << p.describe();
  }
  EXPECT_EQ(*line, "records 4000 intact, file 256000 bytes") << p.describe();

  // The capture notices at its next write that its descriptor is not its own any more.
  const std::string capture = wait_for_capture(out.path(), 20000);
  ASSERT_FALSE(capture.empty()) << "no finished capture in " << out.path() << "\n" << p.describe();
  Spawn summary;
  summary.preload = false;
  summary.argv = {rt::ctl_path(), "summary", "--format", "json", capture};
  const rt::RunResult r = rt::run(summary, kTimeoutMs);
  ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.describe() << r.err;
  const auto json = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << r.out;
  EXPECT_NE(json.dump().find("\"end_reason\":\"write_error\""), std::string::npos) << r.out;
  EXPECT_NE(p.err().find("its descriptor was closed by the program"), std::string::npos) << p.err();

  p.close_stdin();
  const auto status = p.wait(kTimeoutMs);
  ASSERT_TRUE(status) << p.describe();
  EXPECT_EQ(rt::describe_status(*status), "exit 0") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Ways, Daemon, ::testing::Values("close_range", "close_loop", "dup2"));

}  // namespace
