// start-profiling end to end: the real rsrmemctl against a program under the real librsrmem.so
// (tests/ctl/profile_target.cc), then summary, table and stop-profiling over what it wrote.
// Paths come from the environment (tests/ctl/meson.build): RSRMEMCTL, RSR_PRELOAD_LIB,
// RSR_PROFILE_TARGET.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <functional>
#include <sstream>
#include <thread>

#include "subprocess.h"

namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using rsrtest::Result;
using ::testing::Not;

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

class ProfilingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rsrctl-prof-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (target_.pid > 0) {
      kill(target_.pid, SIGKILL);
      rsrtest::finish(target_);
    }
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  Result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ctl_);
    return rsrtest::run(args, {{"RSR_SOCKET_DIR", dir_}});
  }

  // Starts the target under the preload and waits for its control socket.
  bool start(bool profiling_enabled) {
    target_ = rsrtest::spawn({program_}, {{"LD_PRELOAD", lib_},
                                          {"RSR_SOCKET_DIR", dir_},
                                          {"RSR_SERVICE_NAME", "profiled"},
                                          {"RSR_PROFILING_ENABLED", profiling_enabled ? "true" : "false"},
                                          {"RSR_PROFILING_OUTPUT_DIR", dir_ + "/captures"}});
    const std::string socket = dir_ + "/" + std::to_string(target_.pid) + ".sock";
    for (int i = 0; i < 200 && !exists(socket); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    return exists(socket);
  }

  std::string pid() const { return std::to_string(target_.pid); }

  // Ends the target; the usable sizes it printed of a kept and of a churned block (0 when none).
  std::pair<size_t, size_t> stop_target() {
    kill(target_.pid, SIGTERM);
    const Result out = rsrtest::finish(target_);
    target_.pid = -1;
    const size_t at = out.out.find("usable");
    if (at == std::string::npos) return {0, 0};
    std::istringstream printed(out.out.substr(at));
    std::string word;
    size_t kept = 0, churn = 0;
    printed >> word >> kept >> churn;
    return {kept, churn};
  }

  std::string ctl_ = rsrtest::env_or_die("RSRMEMCTL");
  std::string lib_ = rsrtest::env_or_die("RSR_PRELOAD_LIB");
  std::string program_ = rsrtest::env_or_die("RSR_PROFILE_TARGET");
  std::string dir_;
  rsrtest::Child target_;
};

const Json* row_for(const Json& rows, const std::string& function) {
  for (const Json& r : rows)
    if (r["function"].get<std::string>().find(function) != std::string::npos) return &r;
  return nullptr;
}

TEST_F(ProfilingE2eTest, CaptureShowsTheAllocatingFunctionsWithExactCounts) {
  ASSERT_TRUE(start(true)) << "the target's socket did not appear in " << dir_;
  Result r = ctl({"--pid", pid(), "start-profiling", "--duration=2s"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const std::string id = r.out.substr(0, r.out.find('\n'));
  EXPECT_THAT(id, ::testing::StartsWith("background_"));

  r = ctl({"--pid", pid(), "stop-profiling"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id));

  r = ctl({"--pid", pid(), "--format", "json", "stop-profiling"});
  const Json active = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(active.is_object()) << r.out;
  ASSERT_EQ(active["profilers"].size(), 1u) << r.out;
  const std::string path = active["profilers"][0].value("path", "");

  kill(target_.pid, SIGUSR1);
  // The capture ends by itself after 2 s; its file loses ".part" then.
  std::string file = path;
  if (file.size() > 5 && file.compare(file.size() - 5, 5, ".part") == 0)
    file.resize(file.size() - 5);
  for (int i = 0; i < 200 && !exists(file); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(exists(file)) << file;
  const auto [kept_usable, churn_usable] = stop_target();
  ASSERT_GT(kept_usable, 0u);

  r = ctl({"summary", file, "--format", "json", "--top", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json summary = Json::parse(r.out);
  EXPECT_EQ(summary["id"], id);
  EXPECT_EQ(summary["service"], "profiled");
  const Json* kept = row_for(summary["top_functions"], "keep_records");
  ASSERT_NE(kept, nullptr) << summary.dump(2);
  EXPECT_EQ((*kept)["count"], 100);
  EXPECT_EQ((*kept)["bytes"], 100 * kept_usable);
  const Json* churn = row_for(summary["top_functions"], "churn_buffers");
  ASSERT_NE(churn, nullptr) << summary.dump(2);
  EXPECT_EQ((*churn)["count"], 50);

  r = ctl({"table", file, "--temporary", "--format", "json", "--top", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json temporary = Json::parse(r.out);
  churn = row_for(temporary["rows"], "churn_buffers");
  ASSERT_NE(churn, nullptr) << temporary.dump(2);
  EXPECT_EQ((*churn)["count"], 50);
  EXPECT_EQ((*churn)["bytes"], 50 * churn_usable);
  EXPECT_EQ(row_for(temporary["rows"], "keep_records"), nullptr);

  r = ctl({"table", file, "--leaks"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("keep_records"));
  EXPECT_THAT(r.out, HasSubstr("profile_target.cc"));

  // The flamegraph page's uses (what each stack allocated per thread and time span) add up to
  // the view's totals: every allocation, and with --leaks the blocks never freed.
  for (const std::string view : {"", "--leaks"}) {
    const std::string html = dir_ + "/page" + view + ".html";
    std::vector<std::string> args = {"flamegraph", file, "-o", html};
    if (!view.empty()) args.push_back(view);
    r = ctl(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string page = rsrtest::read_file(html);
    const std::string open = "<script type=\"application/json\" id=\"profile-data\">";
    const size_t begin = page.find(open) + open.size();
    const Json data = Json::parse(page.substr(begin, page.find("</script>", begin) - begin));
    uint64_t count = 0, bytes = 0;
    const Json& rows = data["uses"]["rows"];
    for (size_t i = 0; i + 5 < rows.size(); i += 6) {
      EXPECT_LT(rows[i + 1].get<size_t>(), data["threads"].size());
      if (view.empty() || rows[i + 3] == -1) count += rows[i + 4].get<uint64_t>(), bytes += rows[i + 5].get<uint64_t>();
    }
    r = ctl({"summary", file, "--format", "json", view.empty() ? "--top=1" : view});
    const Json totals = Json::parse(r.out);
    EXPECT_EQ(count, totals["view_allocations"]) << view;
    EXPECT_EQ(bytes, totals["view_bytes"]) << view;
    EXPECT_GT(data["timeline"]["step_s"].get<double>(), 0);
    EXPECT_GT(data["uses"]["step_s"].get<double>(), 0);
  }
}

// Two captures of one program: the first while it idles, the second across its work. diff shows
// the kept records as the top growth, new, with their exact bytes.
TEST_F(ProfilingE2eTest, DiffOfTwoPhasesShowsTheNewSiteAsTheTopGrowth) {
  ASSERT_TRUE(start(true)) << "the target's socket did not appear in " << dir_;
  // Starts a capture of `seconds`, runs `during` and returns the file once it is complete.
  auto capture = [&](const char* seconds, const std::function<void()>& during) -> std::string {
    Result r = ctl({"--pid", pid(), "--format", "json", "start-profiling", std::string("--duration=") + seconds});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    const Json started = Json::parse(r.out, nullptr, false);
    if (!started.is_object()) return "";
    const std::string file = started.value("file", started.value("path", ""));
    during();
    for (int i = 0; i < 200 && !exists(file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return file;
  };
  const std::string idle = capture("1s", [] {});
  ASSERT_TRUE(exists(idle)) << idle;
  const std::string busy = capture("1s", [&] { kill(target_.pid, SIGUSR1); });
  ASSERT_TRUE(exists(busy)) << busy;
  const size_t kept_usable = stop_target().first;
  ASSERT_GT(kept_usable, 0u);

  Result r = ctl({"diff", idle, busy, "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json diff = Json::parse(r.out);
  ASSERT_GE(diff["grew"].size(), 1u) << diff.dump(2);
  EXPECT_THAT(diff["grew"][0]["function"].get<std::string>(), HasSubstr("keep_records"));
  EXPECT_EQ(diff["grew"][0]["status"], "new");
  EXPECT_EQ(diff["grew"][0]["delta_bytes"], 100 * kept_usable);
  EXPECT_EQ(diff["grew"][0]["new_count"], 100);
  EXPECT_TRUE(diff["shrank"].empty()) << diff.dump(2);

  r = ctl({"diff", idle, busy, "--leaks"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("keep_records"));
  EXPECT_THAT(r.out, Not(HasSubstr("churn_buffers")));  // freed at once: not live at the end

  r = ctl({"diff", idle, busy, "--leaks", "--as", "tree", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json trees = Json::parse(r.out);
  EXPECT_EQ(trees["grew"]["bytes"], 100 * kept_usable);
  EXPECT_THAT(trees["grew"].dump(), HasSubstr("keep_records"));
  r = ctl({"diff", idle, busy, "--as", "flamegraph", "-o", dir_ + "/diff.html"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(rsrtest::read_file(dir_ + "/diff.html"), HasSubstr("keep_records"));
  r = ctl({"diff", idle, busy, "--as", "chart"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--as"));
}

TEST_F(ProfilingE2eTest, RefusalsExitFour) {
  ASSERT_TRUE(start(false));
  Result r = ctl({"--pid", pid(), "start-profiling", "--duration=0.5"});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("RSR_PROFILING_ENABLED"));
  r = ctl({"--pid", pid(), "stop-profiling", "--profile-id=background_1"});
  EXPECT_EQ(r.code, 4);
  EXPECT_THAT(r.err, HasSubstr("background_1"));
}

}  // namespace
