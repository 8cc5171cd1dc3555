// `rsrmemctl check-leaks` against fake control servers answering with `check_leaks` replies
// shaped as in common/protocol.md: each indicator's message and severity, recommendations that
// name the user's function (sites whose stacks start in std:: code), the no-indicator line, JSON,
// --verbose, --all, exit codes, refusals; and health-check with leak detection disabled.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <new>
#include <sstream>

#include "commands.h"
#include "errors.h"
#include "fake_server.h"
#include "leak_fixture.h"
#include "leak_replies.h"

namespace {

using namespace rsr::ctl;
using namespace rsrtest::leaks;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kO0Place = "rsrtest::register_session (leak_fixture.cc:";

class CheckLeaksTest : public ::testing::Test {
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
    g.timeout = std::chrono::milliseconds(3000);
    return g;
  }

  // check-leaks against one fake process answering `reply`; returns the exit code.
  int check(const Json& reply, bool verbose = false, OutputFormat format = OutputFormat::kText) {
    rsrtest::FakeServer server(socket_for(getpid()), answers({{"check_leaks", reply}}));
    const int code = cmd_check_leaks(options(TargetMode::kPid, format), LeakOptions{verbose}, io_);
    requests_ = server.requests();
    return code;
  }

  rsrtest::TempDir dir_;
  std::ostringstream out_, err_;
  Io io_{out_, err_};
  std::vector<std::string> requests_;
};

std::string line_of(int line) { return std::to_string(line); }

TEST_F(CheckLeaksTest, SeedShapeSortedBySeverityNamingTheUserFunction) {
  // Sent MEDIUM first: the report puts the most severe first.
  const Json reply =
      leaks_reply(getpid(), {site_growth("MEDIUM", mib(3.1), mib(6.8), 600, o0_site()),
                             memory_growth("HIGH", mib(40), mib(40) * 1.253, 300)});
  EXPECT_EQ(check(reply), kExitNegative);
  EXPECT_EQ(Json::parse(requests_.at(0)), (Json{{"cmd", "check_leaks"}}));
  const std::string line = line_of(rsrtest::o0_push_line);
  EXPECT_EQ(out_.str(),
            "Found 2 leak indicators:\n"
            "  [HIGH] Memory growth detected: 25.3% increase over 5 minutes\n"
            "  [MEDIUM] Call site growth: " +
                kO0Place + line +
                ") live memory increased by 119% (3.1 MiB -> 6.8 MiB) over 10 minutes\n"
                "\n"
                "Recommendations:\n"
                "  \u2022 Review " +
                kO0Place + line +
                " in libleakfixture_o0.so): its live memory grew 119% in 10 minutes and is still "
                "growing \u2014 check that entries it adds are removed, or that what it fills is "
                "bounded\n");
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CheckLeaksTest, SiteGrowthPercentIsTheRatio) {
  Json i = site_growth("HIGH", mib(1), mib(1), 600, o0_site());
  i["growth_ratio"] = 1.2;  // the library's figure wins over to/from
  EXPECT_EQ(check(leaks_reply(getpid(), {i})), kExitNegative);
  EXPECT_THAT(out_.str(), HasSubstr("  [HIGH] Call site growth: " + kO0Place));
  EXPECT_THAT(out_.str(), HasSubstr(") live memory increased by 120% (1.0 MiB -> 1.0 MiB) over 10 "
                                    "minutes\n"));
}

TEST_F(CheckLeaksTest, AccumulationMessageAndRecommendation) {
  Json i = accumulation("LOW", 3 * 1024 * 1024, 5 * 1024 * 1024, 180, 3, o2_site());
  EXPECT_EQ(check(leaks_reply(getpid(), {i})), kExitNegative);
  const std::string place =
      "rsrtest::store_session (leak_fixture.cc:" + line_of(rsrtest::o2_push_line);
  EXPECT_THAT(out_.str(), HasSubstr("Found 1 leak indicator:\n"
                                    "  [LOW] Memory accumulation: " +
                                    place +
                                    ") live memory keeps rising (3.0 MiB -> "
                                    "5.0 MiB over 3 minutes)\n"));
  EXPECT_THAT(out_.str(),
              HasSubstr("  \u2022 Review " + place +
                        " in libleakfixture_o2.so): its live memory keeps rising "
                        "(3.0 MiB -> 5.0 MiB over 3 minutes) \u2014 look for a container, "
                        "cache or queue it fills and never prunes\n"));
}

TEST_F(CheckLeaksTest, HighMemoryComparesRssWithTheLiveHeap) {
  Json reply = leaks_reply(getpid(), {high_memory("HIGH", mib(100), mib(812))});
  reply["history"].back()["live_bytes"] = mib(120);
  EXPECT_EQ(check(reply), kExitNegative);
  EXPECT_EQ(
      out_.str(),
      "Found 1 leak indicator:\n"
      "  [HIGH] High memory usage: RSS 812 MiB is above the 100 MiB threshold\n"
      "\n"
      "Recommendations:\n"
      "  \u2022 RSS is above RSR_LEAK_MEMORY_THRESHOLD_MB; compare RSS (812 MiB) with the live "
      "heap (120 MiB): a large gap points at fragmentation or memory outside the heap\n");
}

TEST_F(CheckLeaksTest, HeapGrowthWithoutASiteSaysSo) {
  EXPECT_EQ(check(leaks_reply(getpid(), {memory_growth("CRITICAL", mib(10), mib(25), 5400)})),
            kExitNegative);
  EXPECT_THAT(out_.str(),
              HasSubstr("  [CRITICAL] Memory growth detected: 150.0% increase over 1.5 hours\n"));
  EXPECT_THAT(out_.str(), HasSubstr("  \u2022 Live heap grows but no single call site stands out: "
                                    "run `rsrmemctl memory-summary` and compare top sites over "
                                    "time\n"));
}

TEST_F(CheckLeaksTest, RecommendationsAreDeduplicatedAndOrderedBySeverity) {
  // The same site twice (site_growth and accumulation), another site, and heap growth: one line
  // per site, the most severe first, and no "no single call site" line since sites are named.
  const Json reply = leaks_reply(getpid(), {accumulation("LOW", mib(2), mib(4), 180, 2, o0_site()),
                                            site_growth("MEDIUM", mib(1), mib(3), 180, o2_site()),
                                            site_growth("CRITICAL", mib(2), mib(9), 180, o0_site()),
                                            memory_growth("HIGH", mib(20), mib(30), 180)});
  EXPECT_EQ(check(reply), kExitNegative);
  const std::string text = out_.str();
  const std::string recs = text.substr(text.find("Recommendations:"));
  EXPECT_EQ(std::count(recs.begin(), recs.end(), '\n'), 3) << recs;  // title + two sites
  const size_t o0 = recs.find("Review rsrtest::register_session");
  const size_t o2 = recs.find("Review rsrtest::store_session");
  EXPECT_NE(o0, std::string::npos);
  EXPECT_NE(o2, std::string::npos);
  EXPECT_LT(o0, o2);                                       // CRITICAL before MEDIUM
  EXPECT_THAT(recs, HasSubstr("grew 350% in 3 minutes"));  // from the CRITICAL indicator
  EXPECT_THAT(recs, Not(HasSubstr("no single call site")));
  // Indicators in severity order, ties in the order sent.
  const size_t critical = text.find("[CRITICAL]"), high = text.find("[HIGH]"),
               medium = text.find("[MEDIUM]"), low = text.find("[LOW]");
  EXPECT_LT(critical, high);
  EXPECT_LT(high, medium);
  EXPECT_LT(medium, low);
}

TEST_F(CheckLeaksTest, NoIndicators) {
  EXPECT_EQ(check(leaks_reply(getpid(), {})), kExitOk);
  EXPECT_EQ(out_.str(),
            "No leak indicators found (judged on 15 minutes of history, 4 points; 4 background checks so far).\n");
  out_.str("");
  Json reply = leaks_reply(getpid(), {});
  reply["checks"] = 1;
  reply["history"] = Json::array({reply["history"].back()});
  reply.erase("observed_s");  // a library before observed_s: the history's span
  EXPECT_EQ(check(reply), kExitOk);
  EXPECT_EQ(out_.str(), "No leak indicators found (judged on 0 seconds of history, 1 point; 1 background check so far).\n");
}

TEST_F(CheckLeaksTest, JsonShape) {
  const Json reply =
      leaks_reply(getpid(), {memory_growth("HIGH", mib(40), mib(40) * 1.253, 300),
                             site_growth("MEDIUM", mib(3.1), mib(6.8), 600, o0_site())});
  EXPECT_EQ(check(reply, false, OutputFormat::kJson), kExitNegative);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(out["pid"], getpid());
  EXPECT_EQ(out["service"], "svc");
  EXPECT_EQ(out["program"], "/usr/bin/svc");
  EXPECT_EQ(out["checks"], 4);
  EXPECT_EQ(out["history"], reply["history"]);
  EXPECT_EQ(out["detected"], reply["detected"]);
  EXPECT_EQ(out["thresholds"], reply["thresholds"]);
  EXPECT_FALSE(out.contains("indicators"));  // renamed leak_indicators, as the seed's jq expects
  EXPECT_FALSE(out.contains("modules"));     // frames come symbolized instead
  ASSERT_EQ(out["leak_indicators"].size(), 2u);

  const Json& heap = out["leak_indicators"][0];
  EXPECT_EQ(heap["type"], "memory_growth");
  EXPECT_EQ(heap["severity"], "HIGH");
  EXPECT_EQ(heap["message"], "Memory growth detected: 25.3% increase over 5 minutes");
  EXPECT_DOUBLE_EQ(heap["growth_percent"].get<double>(), 25.3);
  EXPECT_NEAR(heap["growth_ratio"].get<double>(), 0.253, 1e-9);
  for (const char* key : {"growth_bytes", "from_bytes", "to_bytes", "window_s"})
    EXPECT_TRUE(heap[key].is_number()) << key;

  const Json& site = out["leak_indicators"][1];
  EXPECT_EQ(site["type"], "site_growth");
  EXPECT_THAT(site["message"].get<std::string>(), HasSubstr("Call site growth: " + kO0Place));
  EXPECT_EQ(site["series"], reply["indicators"][1]["series"]);
  EXPECT_EQ(site["site"]["id"], 7);
  EXPECT_EQ(site["site"]["live_bytes"], reply["indicators"][1]["site"]["live_bytes"]);
  const Json& frames = site["site"]["frames"];
  ASSERT_GT(frames.size(), 3u);
  EXPECT_THAT(frames[0]["module"].get<std::string>(), HasSubstr("libstdc++"));
  for (const char* key : {"address", "function", "file", "line", "module", "offset", "inlined"})
    EXPECT_TRUE(frames[1].contains(key)) << key;
  const Json& user = site["site"]["user_frame"];
  EXPECT_EQ(user["function"], "rsrtest::register_session");
  EXPECT_EQ(user["line"], rsrtest::o0_push_line);
  EXPECT_EQ(user["fallback"], false);
  EXPECT_THAT(frames[user["index"].get<size_t>()]["function"].get<std::string>(),
              HasSubstr("rsrtest::register_session("));

  ASSERT_EQ(out["recommendations"].size(), 1u);
  EXPECT_THAT(out["recommendations"][0].get<std::string>(),
              HasSubstr("Review " + kO0Place + line_of(rsrtest::o0_push_line) +
                        " in libleakfixture_o0.so)"));
}

// Stacks named by the same frame are judged together as well (commands_leaks.cc): the same
// register_session reached from two callers.
std::vector<uint64_t> other_caller(std::vector<uint64_t> frames) {
  frames.back() = reinterpret_cast<uint64_t>(&other_caller) + 1;
  return frames;
}

TEST_F(CheckLeaksTest, AStackThatReplacesAnotherOfTheSameFunctionIsPassedOver) {
  // Stack 7 grows while stack 8 of the same function shrinks as much: a cache refreshed from
  // another caller than the one that filled it.
  const Json reply = leaks_reply(getpid(), {site_growth("MEDIUM", mib(1), mib(6), 600, o0_site())},
                                 {judged_site(7, o0_site(), mib(1), mib(6), 10, 0),
                                  judged_site(8, other_caller(o0_site()), mib(6), mib(1), -10, 20)});
  EXPECT_EQ(check(reply, false, OutputFormat::kJson), kExitOk);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(out["leak_indicators"], Json::array());
  ASSERT_EQ(out["passed_over"].size(), 1u);
  EXPECT_THAT(out["passed_over"][0].get<std::string>(),
              HasSubstr("rsrtest::register_session (leak_fixture.cc:"));
  EXPECT_THAT(out["passed_over"][0].get<std::string>(), HasSubstr("its 2 stacks together hold steady (7.0 MiB -> 7.0 MiB)"));
  EXPECT_FALSE(out.contains("judged_sites"));
  out_.str("");
  EXPECT_EQ(check(reply), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("No leak indicators found"));
  EXPECT_THAT(out_.str(), HasSubstr("\nPassed over (judged by the function as well as by the stack):\n  rsrtest::register_session"));
}

TEST_F(CheckLeaksTest, AFunctionWhoseStacksGrowOnlyTogetherIsNamed) {
  // Neither stack has grown by RSR_LEAK_MIN_SITE_BYTES (1 MiB) on its own; together they have,
  // with 16 samples and no durable death: p = 2^-16, below the level 0.0025.
  const Json reply = leaks_reply(getpid(), {},
                                 {judged_site(7, o0_site(), mib(0.6), mib(1.15), 8, 0),
                                  judged_site(8, other_caller(o0_site()), mib(0.6), mib(1.15), 8, 0)});
  EXPECT_EQ(check(reply, false, OutputFormat::kJson), kExitNegative);
  const Json out = Json::parse(out_.str());
  ASSERT_EQ(out["leak_indicators"].size(), 1u) << out.dump(1);
  const Json& i = out["leak_indicators"][0];
  EXPECT_EQ(i["type"], "accumulation");
  EXPECT_EQ(i["judged_by"], "function");
  EXPECT_EQ(i["stacks"], 2);
  EXPECT_EQ(i["site"]["user_frame"]["function"], "rsrtest::register_session");
  EXPECT_THAT(i["message"].get<std::string>(), HasSubstr(" across 2 stacks"));
  EXPECT_NEAR(i["evidence"]["p_value"].get<double>(), 1.0 / 65536, 1e-9);
}

TEST_F(CheckLeaksTest, StackIndicatorsSayTheyWereJudgedByStack) {
  const Json reply = leaks_reply(getpid(), {site_growth("MEDIUM", mib(3.1), mib(6.8), 600, o0_site())});
  EXPECT_EQ(check(reply, false, OutputFormat::kJson), kExitNegative);
  const Json out = Json::parse(out_.str());
  ASSERT_EQ(out["leak_indicators"].size(), 1u);
  EXPECT_EQ(out["leak_indicators"][0]["judged_by"], "stack");
}

TEST_F(CheckLeaksTest, JsonWithoutIndicatorsExitsZero) {
  EXPECT_EQ(check(leaks_reply(getpid(), {}), false, OutputFormat::kJson), kExitOk);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(out["leak_indicators"], Json::array());
  EXPECT_EQ(out["recommendations"], Json::array());
}

TEST_F(CheckLeaksTest, VerboseShowsStacksSeriesAndHistory) {
  const Json reply =
      leaks_reply(getpid(), {site_growth("MEDIUM", mib(3.1), mib(6.8), 600, o0_site()),
                             memory_growth("HIGH", mib(40), mib(50), 300)});
  EXPECT_EQ(check(reply, /*verbose=*/true), kExitNegative);
  const std::string text = out_.str();
  EXPECT_THAT(text, HasSubstr("  [HIGH] Memory growth detected: 25.0% increase over 5 minutes\n"
                              "      live heap 40.0 MiB -> 50.0 MiB (+10.0 MiB) over 5m 00s\n"));
  EXPECT_THAT(text, HasSubstr("      site 7: 6.80 MiB live in 700 blocks, 27 live samples; named "
                              "by frame #"));
  // The full stack, memory-summary's printer: libstdc++ first, then std:: code, then the user's.
  EXPECT_THAT(text, HasSubstr("       #0 operator new"));
  EXPECT_THAT(text, HasSubstr("(libstdc++.so.6)\n       #1 std::"));
  EXPECT_THAT(text, HasSubstr(" rsrtest::register_session(std::vector<long, "));
  EXPECT_THAT(text, HasSubstr("leak_fixture.cc:" + line_of(rsrtest::o0_push_line) +
                              "  (libleakfixture_o0.so)\n"));
  EXPECT_THAT(text, Not(HasSubstr("more frames")));
  // Its age profile and the evidence of the judgement.
  EXPECT_THAT(text, HasSubstr("      age: 92% of its 27 live samples are older than 10 minutes, born "
                              "steadily since start\n"));
  EXPECT_THAT(text, HasSubstr("      evidence: +16 samples against 2 durable deaths (18 born) since the "
                              "reference; p = 3.2e-09, level 0.0025\n"));
  // The growth series, one line per point.
  EXPECT_THAT(text, HasSubstr("      levels over the process's life (oldest first):\n"
                              "        when         live bytes  samples\n"
                              "        10m 00s ago    3.10 MiB       11\n"
                              "        5m 00s ago     4.95 MiB       19\n"
                              "        now            6.80 MiB       27\n"));
  // The global history and the settings the judgement used.
  EXPECT_THAT(text, HasSubstr("History (live heap level and RSS over the process's life, oldest first):\n"
                              "  when         live heap       RSS\n"
                              "  15m 00s ago   40.0 MiB  80.0 MiB\n"));
  EXPECT_THAT(text, HasSubstr("  now           50.0 MiB  95.0 MiB\n"));
  EXPECT_THAT(text, HasSubstr("Checks every 5 minutes (4 checks so far), probes every 15 seconds. "
                              "Thresholds: heap growth 20%, site growth 100%, RSS 100 MiB, "
                              "smallest judged growth 1.0 MiB.\n"));
  EXPECT_THAT(text, HasSubstr("Found by background checks so far: site_growth MEDIUM 2.\n"));
}

TEST_F(CheckLeaksTest, VerboseWithoutIndicatorsShowsTheHistory) {
  EXPECT_EQ(check(leaks_reply(getpid(), {}), /*verbose=*/true), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("No leak indicators found"));
  EXPECT_THAT(out_.str(), HasSubstr("History (live heap level"));
}

TEST_F(CheckLeaksTest, RefusedWhenLeakDetectionIsDisabled) {
  rsrtest::FakeServer server(socket_for(getpid()),
                             [](const std::string&) { return disabled_refusal(); });
  EXPECT_EQ(cmd_check_leaks(options(TargetMode::kPid), {}, io_), kExitConnection);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("the process refused 'check_leaks': leak detection is "
                                    "disabled (RSR_LEAK_DETECTION_ENABLED=false)"));
  EXPECT_THAT(err_.str(), HasSubstr("restart the service with RSR_LEAK_DETECTION_ENABLED=true"));
}

TEST_F(CheckLeaksTest, OlderLibraryIsExitFourWithAHint) {
  rsrtest::FakeServer server(socket_for(getpid()), answers({}));  // unknown command
  EXPECT_EQ(cmd_check_leaks(options(TargetMode::kPid), {}, io_), kExitConnection);
  EXPECT_THAT(err_.str(), HasSubstr("unknown command"));
  EXPECT_THAT(err_.str(), HasSubstr("predates leak detection"));
}

TEST_F(CheckLeaksTest, MissingTargetIsExitThree) {
  GlobalOptions g = options(TargetMode::kPid);
  g.target.pid = 2147480000;
  try {
    cmd_check_leaks(g, {}, io_);
    FAIL() << "no exception";
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
  }
}

// --all: 1 when any process has indicators (even if another could not be checked), else 4 when
// any could not be checked, else 0; JSON keyed by pid, text one block per process.
class CheckLeaksAllTest : public CheckLeaksTest {
 protected:
  rsrtest::FakeServer::Handler refusing() {
    return [](const std::string&) { return disabled_refusal(); };
  }
  const pid_t a_ = getpid(), b_ = getppid();
};

TEST_F(CheckLeaksAllTest, FoundOutranksRefused) {
  rsrtest::FakeServer sa(
      socket_for(a_),
      answers({{"check_leaks", leaks_reply(a_, {memory_growth("HIGH", mib(10), mib(20), 300)})}}));
  rsrtest::FakeServer sb(socket_for(b_), refusing());
  EXPECT_EQ(cmd_check_leaks(options(TargetMode::kAll, OutputFormat::kJson), {}, io_),
            kExitNegative);
  const Json out = Json::parse(out_.str());
  EXPECT_EQ(out[std::to_string(a_)]["leak_indicators"].size(), 1u);
  EXPECT_EQ(out[std::to_string(b_)]["state"], "error");
  EXPECT_THAT(out[std::to_string(b_)]["error"].get<std::string>(),
              HasSubstr("RSR_LEAK_DETECTION_ENABLED"));
  EXPECT_THAT(err_.str(), HasSubstr("pid " + std::to_string(b_) + ": the process refused"));
}

TEST_F(CheckLeaksAllTest, RefusedWithoutIndicatorsIsFour) {
  rsrtest::FakeServer sa(socket_for(a_), answers({{"check_leaks", leaks_reply(a_, {})}}));
  rsrtest::FakeServer sb(socket_for(b_), refusing());
  EXPECT_EQ(cmd_check_leaks(options(TargetMode::kAll), {}, io_), kExitConnection);
}

TEST_F(CheckLeaksAllTest, NoneAnywhereIsZeroWithOneBlockPerProcess) {
  rsrtest::FakeServer sa(socket_for(a_), answers({{"check_leaks", leaks_reply(a_, {})}}));
  rsrtest::FakeServer sb(socket_for(b_), answers({{"check_leaks", leaks_reply(b_, {})}}));
  EXPECT_EQ(cmd_check_leaks(options(TargetMode::kAll), {}, io_), kExitOk);
  const std::string text = out_.str();
  for (pid_t p : {a_, b_})
    EXPECT_THAT(text, HasSubstr("== " + std::to_string(p) + " (svc) ==\nNo leak indicators found"));
}

TEST_F(CheckLeaksAllTest, NoProcessesIsThree) {
  try {
    cmd_check_leaks(options(TargetMode::kAll), {}, io_);
    FAIL() << "no exception";
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
  }
}

// health-check renders the leak_detection component like any other; "disabled" is not a
// problem (the library keeps the overall status healthy, and rsrmemctl goes by that status).
TEST_F(CheckLeaksTest, HealthShowsLeakDetectionDisabledAndStaysHealthy) {
  Json r = common_fields(getpid());
  r["status"] = "healthy";
  r["components"] = Json{
      {"tracking", {{"status", "ok"}, {"detail", "exact counters and sampler running"}}},
      {"stack_capture", {{"status", "ok"}, {"detail", "libunwind loaded"}}},
      {"private_heap", {{"status", "ok"}, {"detail", "mimalloc loaded"}}},
      {"control_socket", {{"status", "ok"}, {"detail", "/tmp/x.sock"}}},
      {"leak_detection", {{"status", "disabled"}, {"detail", "RSR_LEAK_DETECTION_ENABLED=false"}}}};
  rsrtest::FakeServer server(socket_for(getpid()), answers({{"health", r}}));
  EXPECT_EQ(cmd_health(options(TargetMode::kPid), false, io_), kExitOk);
  EXPECT_EQ(out_.str(),
            "Health check complete. Status: healthy\n"
            "\n"
            "Component status:\n"
            "  tracking: ok\n"
            "  stack_capture: ok\n"
            "  private_heap: ok\n"
            "  control_socket: ok\n"
            "  leak_detection: disabled\n");
  out_.str("");
  EXPECT_EQ(cmd_health(options(TargetMode::kPid), true, io_), kExitOk);
  EXPECT_THAT(out_.str(),
              HasSubstr("  leak_detection: disabled (RSR_LEAK_DETECTION_ENABLED=false)\n"));
}

}  // namespace
