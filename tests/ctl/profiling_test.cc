// Profiling captures on rsrmemctl's side: the capture reader (totals, views, time order,
// truncated and bad files), the reports over a capture built here with stacks of real functions
// (symfixture, leakfixture_o0), --duration and id parsing, cleanup-profiles, and
// start/stop-profiling against a fake server.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <new>
#include <sstream>

#include "capture_builder.h"
#include "capture_reader.h"
#include "commands.h"
#include "errors.h"
#include "fake_server.h"
#include "leak_fixture.h"
#include "module_map.h"
#include "subprocess.h"
#include "symbolizer_fixture.h"

namespace {

using namespace rsr::ctl;
using rsr::capture::Record;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kA1 = 0x10000, kA2 = 0x20000, kA3 = 0x30000, kA4 = 0x40000;

struct Stacks {
  std::vector<uint64_t> plain, outer, session;
};

Stacks real_stacks() {
  volatile int sink = 0;
  Stacks s;
  s.plain = {reinterpret_cast<uint64_t>(rsrtest::plain_function(&sink))};
  const auto new_fn = static_cast<void* (*)(std::size_t)>(&::operator new);
  s.outer = {reinterpret_cast<uint64_t>(new_fn) + 8,
             reinterpret_cast<uint64_t>(rsrtest::outer_function(&sink))};
  s.session = rsrtest::o0_allocation_stack();
  return s;
}

// The scenario every test reads (times in ns; file order differs from time order: thread 100's
// allocation at 6500 reuses the address thread 200 frees at 6000 and is written first).
//   all:        plain 124 B / 2, outer (inlined_helper) 264 B / 2, session 1000 B / 1
//   leaks:      outer 264 B / 2
//   temporary:  plain 124 B / 2
// Totals: 5 allocations 1388 B, 3 frees 1124 B, peak 1088 B, 264 B live in 2 blocks.
// MODULE records for the modules the stacks' addresses are in.
void add_modules(rsrtest::CaptureBuilder& b, const Stacks& s) {
  std::vector<uint64_t> all;
  for (const auto* v : {&s.plain, &s.outer, &s.session}) all.insert(all.end(), v->begin(), v->end());
  std::vector<std::string> seen;
  for (uint64_t a : all) {
    const ModuleInfo m = rsrtest::module_of(reinterpret_cast<void*>(a));
    if (m.path.empty() || std::find(seen.begin(), seen.end(), m.path) != seen.end()) continue;
    seen.push_back(m.path);
    b.module(m);
  }
}

std::string scenario(bool with_end = true) {
  const Stacks s = real_stacks();
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader,
         R"({"format":"rsrmem-capture","version":1,"id":"background_1764400000",)"
         R"("kind":"background","pid":4242,"program":"/usr/bin/svc","service":"svc",)"
         R"("hostname":"h","start_time":1764400000.0,"duration_s":120,"max_bytes":1048576})");
  add_modules(b, s);
  b.thread(100, "main");
  b.thread(200, "worker");
  b.stack(1, s.plain);
  b.stack(2, s.outer);
  b.stack(3, s.session);
  b.alloc(1000, 100, kA1, 100, 1);
  b.free(2000, 100, kA1);
  b.alloc(3000, 100, kA2, 64, 2);
  b.alloc(4000, 200, kA3, 1000, 3);
  b.cut_frame();
  b.alloc(5000, 200, kA4, 24, 1);
  b.free(6000, 200, kA3);
  b.alloc(6500, 100, kA3, 200, 2);  // the address again, after its free
  b.free(7000, 200, kA4);
  b.free(8000, 100, 0xdead0);  // allocated before the capture: not written
  if (with_end) {
    b.cut_frame();
    b.json(Record::kEnd,
           R"({"reason":"duration","truncated":false,"end_time":1764400120.0,"events":10,)"
           R"("dropped_events":0})");
  }
  return b.bytes();
}

class ProfilingTest : public ::testing::Test {
 protected:
  std::string write(const std::string& bytes, const std::string& name = "profile_x.bin") {
    const std::string path = dir_.path() + "/" + name;
    rsrtest::write_file(path, bytes);
    return path;
  }

  ReportOptions report(const std::string& file, ProfileView view = ProfileView::kAll) {
    ReportOptions o;
    o.file = file;
    o.view = view;
    return o;
  }

  GlobalOptions text() const { return GlobalOptions{}; }
  GlobalOptions json() const {
    GlobalOptions g;
    g.format = OutputFormat::kJson;
    return g;
  }

  const ProfileStack* stack_named(const ProfileModel& m, const std::string& fn) {
    for (const ProfileStack& s : m.stacks)
      for (const ProfileFrame& f : s.frames)
        if (f.function.find(fn) != std::string::npos) return &s;
    return nullptr;
  }

  rsrtest::TempDir dir_;
  std::ostringstream out_, err_;
  Io io_{out_, err_};
};

TEST_F(ProfilingTest, ReaderTotalsAndHeader) {
  const ProfileModel m = read_capture(write(scenario()));
  EXPECT_EQ(m.id, "background_1764400000");
  EXPECT_EQ(m.kind, "background");
  EXPECT_EQ(m.pid, 4242);
  EXPECT_EQ(m.service, "svc");
  EXPECT_EQ(m.end_reason, "duration");
  EXPECT_FALSE(m.truncated);
  EXPECT_TRUE(m.complete);
  EXPECT_DOUBLE_EQ(m.duration_s, 120);
  EXPECT_EQ(m.allocations, 5u);
  EXPECT_EQ(m.allocated_bytes, 1388u);
  EXPECT_EQ(m.frees, 3u);
  EXPECT_EQ(m.freed_bytes, 1124u);
  EXPECT_EQ(m.peak_bytes, 1088u);
  EXPECT_EQ(m.live_bytes_at_end, 264u);
  EXPECT_EQ(m.live_blocks_at_end, 2u);
  ASSERT_EQ(m.threads.size(), 2u);
  EXPECT_EQ(m.threads[0].name, "main");
  EXPECT_EQ(m.threads[0].allocations, 3u);
  EXPECT_EQ(m.threads[0].bytes, 364u);
  EXPECT_EQ(m.threads[1].name, "worker");
  EXPECT_EQ(m.threads[1].bytes, 1024u);
  EXPECT_TRUE(m.warnings.empty()) << ::testing::PrintToString(m.warnings);
}

TEST_F(ProfilingTest, ReaderViewAllSymbolizesAndTrims) {
  const ProfileModel m = read_capture(write(scenario()));
  EXPECT_EQ(m.view_allocations, 5u);
  EXPECT_EQ(m.view_bytes, 1388u);
  ASSERT_EQ(m.stacks.size(), 3u);
  EXPECT_EQ(m.stacks[0].bytes, 1000u);  // largest first
  EXPECT_EQ(m.stacks[1].bytes, 264u);
  EXPECT_EQ(m.stacks[2].bytes, 124u);
  const ProfileStack& plain = m.stacks[2];
  EXPECT_EQ(plain.count, 2u);
  ASSERT_EQ(plain.user_frame, 0);
  EXPECT_THAT(plain.frames[0].function, HasSubstr("rsrtest::plain_function"));
  EXPECT_EQ(plain.frames[0].line, rsrtest::plain_call_line);

  // operator new dropped from the top; the inlined helper expanded before its host.
  const ProfileStack& outer = m.stacks[1];
  ASSERT_GE(outer.frames.size(), 2u);
  EXPECT_THAT(outer.frames[0].function, HasSubstr("rsrtest::inlined_helper"));
  EXPECT_TRUE(outer.frames[0].inlined);
  EXPECT_EQ(outer.frames[0].line, rsrtest::inlined_call_line);
  EXPECT_THAT(outer.frames[1].function, HasSubstr("rsrtest::outer_function"));
  EXPECT_FALSE(outer.frames[1].inlined);
  EXPECT_EQ(outer.frames[1].line, rsrtest::outer_call_line);
  EXPECT_EQ(outer.frames[0].address, outer.frames[1].address);
  EXPECT_EQ(outer.user_frame, 0);

  // std:: frames kept, the user frame is register_session.
  const ProfileStack& session = m.stacks[0];
  ASSERT_GE(session.user_frame, 1);
  EXPECT_THAT(session.frames[0].function, HasSubstr("std::"));
  EXPECT_THAT(session.frames[static_cast<size_t>(session.user_frame)].function,
              HasSubstr("rsrtest::register_session"));
  EXPECT_EQ(m.size_histogram[size_bucket(1000)].count, 1u);
  EXPECT_EQ(m.size_histogram[size_bucket(24)].count, 1u);
}

TEST_F(ProfilingTest, ReaderLeaksView) {
  const ProfileModel m = read_capture(write(scenario()), {ProfileView::kLeaks, {}});
  ASSERT_EQ(m.stacks.size(), 1u);
  EXPECT_THAT(m.stacks[0].frames[0].function, HasSubstr("inlined_helper"));
  EXPECT_EQ(m.stacks[0].bytes, 264u);
  EXPECT_EQ(m.stacks[0].count, 2u);
  EXPECT_EQ(m.view_bytes, 264u);
  EXPECT_EQ(m.threads[0].bytes, 264u);
  EXPECT_EQ(m.threads[1].bytes, 0u);
}

TEST_F(ProfilingTest, ReaderTemporaryView) {
  const ProfileModel m = read_capture(write(scenario()), {ProfileView::kTemporary, {}});
  ASSERT_EQ(m.stacks.size(), 1u);
  EXPECT_THAT(m.stacks[0].frames[0].function, HasSubstr("plain_function"));
  EXPECT_EQ(m.stacks[0].bytes, 124u);
  EXPECT_EQ(m.stacks[0].count, 2u);
  EXPECT_EQ(m.size_histogram[size_bucket(100)].count, 1u);
}

// A file is untrusted: records that contradict what came before change nothing and are counted.
TEST_F(ProfilingTest, EventRecordsThatContradictTheStreamAreSkippedAsMalformed) {
  const Stacks st = real_stacks();
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader, R"({"format":"rsrmem-capture","version":2,"id":"background_1","kind":"background"})");
  b.thread(100, "main");
  b.stack(1, st.plain);
  b.alloc(1000, 100, kA1, 4096, 1);
  b.alloc(2000, 100, kA2, 8, 1);
  b.raw(Record::kFree, {2, 0});    // no block is 0 ALLOCs back
  b.raw(Record::kFree, {2, 2});    // nor before the pair's first
  b.raw(Record::kAlloc, {7});      // no such (size, stack) pair
  b.free(3000, 100, kA1);
  b.raw(Record::kFreeLatest, {1});  // kA1 again: no longer live
  b.json(Record::kEnd, R"({"reason":"stopped","truncated":false,"events":3,"dropped_events":0})");
  const ProfileModel m = read_capture(write(b.bytes()));
  EXPECT_EQ(m.allocations, 2u);
  EXPECT_EQ(m.frees, 1u);
  EXPECT_EQ(m.freed_bytes, 4096u);
  EXPECT_EQ(m.live_bytes_at_end, 8u);
  EXPECT_THAT(m.warnings, testing::Contains(HasSubstr("4 malformed records were skipped")));
}

TEST_F(ProfilingTest, ProgressReportsFileBytes) {
  const std::string path = write(scenario());
  uint64_t last = 0, size = 0;
  read_capture(path, {ProfileView::kAll, [&](uint64_t done, uint64_t total) {
                        last = done;
                        size = total;
                      }});
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(size, static_cast<uint64_t>(st.st_size));
  EXPECT_EQ(last, size);
}

TEST_F(ProfilingTest, TruncatedTailKeepsWhatWasDecoded) {
  const std::string full = scenario(/*with_end=*/false);
  // Cut inside the second frame's header: the first frame's four events survive.
  const size_t first = ZSTD_findFrameCompressedSize(full.data() + rsr::capture::kFileHeaderBytes,
                                                    full.size() - rsr::capture::kFileHeaderBytes);
  ASSERT_FALSE(ZSTD_isError(first));
  const ProfileModel m =
      read_capture(write(full.substr(0, rsr::capture::kFileHeaderBytes + first + 3)));
  EXPECT_TRUE(m.file_truncated);
  EXPECT_TRUE(m.truncated);
  EXPECT_EQ(m.allocations, 3u);
  EXPECT_EQ(m.frees, 1u);
  ASSERT_FALSE(m.warnings.empty());
  EXPECT_THAT(m.warnings[0], HasSubstr("truncated"));
  // Cut at the very end (a copy interrupted): still read as truncated.
  EXPECT_TRUE(read_capture(write(full.substr(0, full.size() - 5), "end.bin")).file_truncated);

  ReportOptions o = report(write(full.substr(0, full.size() - 5), "cut.bin"));
  EXPECT_EQ(cmd_profile_summary(text(), o, io_), kExitOk);
  EXPECT_THAT(err_.str(), HasSubstr("warning: capture truncated"));
}

TEST_F(ProfilingTest, CorruptFrameKeepsEarlierFrames) {
  std::string full = scenario();
  const std::string first_two = scenario(false);
  for (size_t i = first_two.size() - 6; i < full.size(); ++i) full[i] = '\x55';
  const ProfileModel m = read_capture(write(full));
  EXPECT_TRUE(m.file_truncated);
  EXPECT_GE(m.allocations, 3u);
}

TEST_F(ProfilingTest, NoEndRecordIsMarkedTruncated) {
  const ProfileModel m = read_capture(write(scenario(false)));
  EXPECT_FALSE(m.file_truncated);
  EXPECT_TRUE(m.truncated);
  EXPECT_EQ(m.allocations, 5u);
  EXPECT_NEAR(m.duration_s, 7000e-9, 1e-12);  // the last event written
}

TEST_F(ProfilingTest, BadFilesGiveClearErrors) {
  auto code_of = [&](const std::string& path, std::string* message) {
    try {
      read_capture(path);
    } catch (const CtlError& e) {
      *message = e.what();
      return static_cast<int>(e.code());
    }
    return 0;
  };
  std::string msg;
  EXPECT_EQ(code_of(dir_.path() + "/missing.bin", &msg), kExitNotFound);
  EXPECT_THAT(msg, HasSubstr("missing.bin"));
  EXPECT_EQ(code_of(dir_.path(), &msg), kExitNotFound);
  EXPECT_EQ(code_of(write("hello, this is not a capture at all"), &msg), kExitUsage);
  EXPECT_THAT(msg, HasSubstr("not an rsrmem capture"));
  EXPECT_EQ(code_of(write(""), &msg), kExitUsage);
  for (char version : {'\x01', '\x03'}) {
    std::string other = scenario();
    other[8] = version;
    EXPECT_EQ(code_of(write(other), &msg), kExitUsage);
    EXPECT_THAT(msg, HasSubstr("version " + std::to_string(version) + " is not supported"));
  }
  std::string garbage = scenario().substr(0, 16) + std::string(200, '\x42');
  EXPECT_EQ(code_of(write(garbage), &msg), kExitUsage);
  EXPECT_THAT(msg, HasSubstr("corrupt"));
}

TEST_F(ProfilingTest, SummaryText) {
  EXPECT_EQ(cmd_profile_summary(text(), report(write(scenario())), io_), kExitOk);
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("Capture background_1764400000 (background), pid 4242 (svc)"));
  EXPECT_THAT(s, HasSubstr("Allocations   5 (1.36 KiB)"));
  EXPECT_THAT(s, HasSubstr("Peak memory   1.06 KiB at 5 us (of the blocks allocated during the capture)"));
  EXPECT_THAT(s, HasSubstr("Live at end   264 B in 2 blocks"));
  EXPECT_THAT(s, HasSubstr("Threads       2"));
  EXPECT_THAT(s, HasSubstr("rsrtest::register_session"));
  EXPECT_THAT(s, HasSubstr("rsrtest::inlined_helper"));
  EXPECT_THAT(s, HasSubstr("rsrtest::plain_function"));
  EXPECT_LT(s.find("register_session"), s.find("inlined_helper"));
  EXPECT_LT(s.find("inlined_helper"), s.find("plain_function"));
  EXPECT_EQ(err_.str(), "");
}

// The header of a background capture `id` whose times are in milliseconds (as the library
// writes them), for the builder `b` made with a 1 ms unit.
void ms_header(rsrtest::CaptureBuilder& b, const std::string& id) {
  b.json(Record::kHeader, R"({"format":"rsrmem-capture","version":2,"id":")" + id +
                              R"(","kind":"background","start_time":1764400000.0,"time_unit_ns":1000000})");
}

// Memory over time: spans of the capture with the highest live bytes of each, the process's heap
// and RSS from COUNTERS, the peak and when; at most kTimelinePoints spans however long it ran.
TEST_F(ProfilingTest, TimelineFollowsLiveMemoryAndTheProcessCounters) {
  const Stacks st = real_stacks();
  rsrtest::CaptureBuilder b(1'000'000);
  ms_header(b, "background_1");
  b.thread(100, "main");
  b.stack(1, st.plain);
  b.stack(2, st.outer);
  constexpr int64_t kMs = 1'000'000;
  b.alloc(500 * kMs, 100, kA1, 1 << 20, 1);  // 1 MiB from 0.5 s to 1.5 s
  b.counters(600 * kMs, 50 << 20, 80 << 20);
  b.alloc(1000 * kMs, 100, kA2, 4096, 2);
  b.free(1500 * kMs, 100, kA1);
  b.counters(1600 * kMs, 40 << 20, 90 << 20);
  b.alloc(9000 * kMs, 100, kA3, 64, 2);      // 9 s: 9000 ms > 512 spans of 1 ms
  b.json(Record::kEnd, R"({"reason":"stopped","truncated":false,"end_time":1764400009.0})");
  const ProfileModel m = read_capture(write(b.bytes()));
  EXPECT_EQ(m.peak_bytes, (1u << 20) + 4096u);
  EXPECT_DOUBLE_EQ(m.peak_time_s, 1.0);
  EXPECT_EQ(m.process_peak_heap_bytes, 50u << 20);
  EXPECT_EQ(m.process_peak_rss_bytes, 90u << 20);
  ASSERT_FALSE(m.timeline.empty());
  EXPECT_LE(m.timeline.size(), ProfileModel::kTimelinePoints);
  EXPECT_DOUBLE_EQ(m.timeline_step_s, 0.032);  // 1 ms doubled until 9 s fits in 512 spans
  auto at = [&](double t) { return m.timeline[static_cast<size_t>(t / m.timeline_step_s)]; };
  EXPECT_EQ(at(0.1).live_bytes, 0u);
  EXPECT_EQ(at(0.7).live_bytes, 1u << 20);
  EXPECT_EQ(at(1.2).live_bytes, (1u << 20) + 4096u);
  EXPECT_EQ(at(3.0).live_bytes, 4096u);  // a span without events holds what was live
  EXPECT_EQ(at(0.6).heap_bytes, 50u << 20);
  EXPECT_EQ(at(1.6).rss_bytes, 90u << 20);
  EXPECT_EQ(at(9.0).live_bytes, 4096u + 64u);

  EXPECT_EQ(cmd_profile_stats(text(), report(write(b.bytes(), "t.bin")), io_), kExitOk);
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("Peak memory   1.00 MiB at 1.0 s (of the blocks allocated during the capture)"));
  EXPECT_THAT(s, HasSubstr("Process       heap peak 50.0 MiB, RSS peak 90.0 MiB (read every 100 ms)"));
  EXPECT_THAT(s, HasSubstr("Live memory over the capture"));
  // The sparkline: quiet, then the top level while the 1 MiB block lives, then low again.
  const size_t open = s.find("  |");
  ASSERT_NE(open, std::string::npos);
  const std::string line = s.substr(open + 3, s.find('|', open + 3) - open - 3);
  EXPECT_EQ(line.size(), 64u);
  EXPECT_EQ(line.front(), ' ');
  EXPECT_NE(line.find('@'), std::string::npos);
  EXPECT_EQ(line.back(), '.');
  out_.str("");
  EXPECT_EQ(cmd_profile_stats(json(), report(write(b.bytes(), "t.bin")), io_), kExitOk);
  const Json j = Json::parse(out_.str());
  EXPECT_EQ(j["totals"]["process_peak_rss_bytes"], 90 << 20);
  EXPECT_DOUBLE_EQ(j["totals"]["peak_time_s"].get<double>(), 1.0);
  EXPECT_EQ(j["timeline"]["points"].size(), m.timeline.size());
}

// Two phases on two threads, in 1 ms units: main allocates 10 x 100 B (plain) at 100-190 ms and
// frees 5 of them at 1500 ms; worker allocates 20 x 50 B (outer) at 1200-1390 ms and frees them
// all at 1900 ms. The timeline's spans are 4 ms (1900 ms in at most 512 spans).
std::string two_phases() {
  const Stacks st = real_stacks();
  rsrtest::CaptureBuilder b(1'000'000);
  ms_header(b, "background_2");
  add_modules(b, st);
  b.thread(100, "main");
  b.thread(200, "worker");
  b.stack(1, st.plain);
  b.stack(2, st.outer);
  constexpr int64_t kMs = 1'000'000;
  for (int i = 0; i < 10; ++i) b.alloc((100 + 10 * i) * kMs, 100, kA1 + 0x100 * i, 100, 1);
  for (int i = 0; i < 20; ++i) b.alloc((1200 + 10 * i) * kMs, 200, kA2 + 0x100 * i, 50, 2);
  for (int i = 0; i < 5; ++i) b.free(1500 * kMs, 100, kA1 + 0x100 * i);
  for (int i = 0; i < 20; ++i) b.free(1900 * kMs, 200, kA2 + 0x100 * i);
  b.json(Record::kEnd, R"({"reason":"stopped","truncated":false,"end_time":1764400001.9})");
  return b.bytes();
}

TEST_F(ProfilingTest, UsesByStackThreadAndTime) {
  const std::string path = write(two_phases());
  // Sums of the uses matching `pick`.
  const auto sum = [](const ProfileModel& m, auto pick) {
    std::pair<uint64_t, uint64_t> t{0, 0};
    for (const StackUse& u : m.uses)
      if (pick(u)) t.first += u.count, t.second += u.bytes;
    return t;
  };
  const ProfileModel all = read_capture(path, {ProfileView::kAll, {}, true});
  EXPECT_DOUBLE_EQ(all.use_step_s, 0.004);
  ASSERT_EQ(all.threads.size(), 2u);
  ASSERT_EQ(all.stacks.size(), 2u);
  const uint32_t plain = all.stacks[0].count == 10 ? 0 : 1;
  EXPECT_EQ(sum(all, [](const StackUse&) { return true; }), std::make_pair(uint64_t{30}, uint64_t{2000}));
  EXPECT_EQ(sum(all, [&](const StackUse& u) { return u.stack == plain && u.thread == 0; }),
            std::make_pair(uint64_t{10}, uint64_t{1000}));
  // Allocated in 100-190 ms (spans 25-47), half freed at 1500 ms (span 375), half still live.
  EXPECT_EQ(sum(all, [](const StackUse& u) { return u.alloc_span >= 25 && u.alloc_span <= 47; }),
            std::make_pair(uint64_t{10}, uint64_t{1000}));
  EXPECT_EQ(sum(all, [](const StackUse& u) { return u.free_span == 375; }), std::make_pair(uint64_t{5}, uint64_t{500}));
  EXPECT_EQ(sum(all, [](const StackUse& u) { return u.free_span == StackUse::kStillLive; }),
            std::make_pair(uint64_t{5}, uint64_t{500}));
  EXPECT_EQ(sum(all, [](const StackUse& u) { return u.thread == 1 && u.free_span == 475; }),
            std::make_pair(uint64_t{20}, uint64_t{1000}));
  // Read without uses: none.
  EXPECT_TRUE(read_capture(path).uses.empty());

  // Leaks: every allocation is kept (a range ends before the frees), and both stacks are there.
  const ProfileModel leaks = read_capture(path, {ProfileView::kLeaks, {}, true});
  EXPECT_EQ(leaks.stacks.size(), 2u);
  EXPECT_EQ(leaks.view_bytes, 500u);
  EXPECT_EQ(sum(leaks, [](const StackUse&) { return true; }), std::make_pair(uint64_t{30}, uint64_t{2000}));
  // Temporary: worker's last block, freed with no allocation of that thread after it.
  const ProfileModel temporary = read_capture(path, {ProfileView::kTemporary, {}, true});
  ASSERT_EQ(temporary.uses.size(), 1u);
  EXPECT_EQ(temporary.uses[0].bytes, 50u);
  EXPECT_EQ(temporary.uses[0].alloc_span, 1390u / 4);
  EXPECT_EQ(temporary.uses[0].free_span, 475u);
}

// More distinct (stack, thread) pairs than the uses kept: their spans grow as long as they can,
// then none are kept, with a warning (no halving at every further allocation, which made this
// read take minutes, and no page of millions of rows).
TEST_F(ProfilingTest, UsesBeyondTheirLimitStayCheap) {
  const Stacks st = real_stacks();
  rsrtest::CaptureBuilder b(1'000'000);
  ms_header(b, "background_3");
  add_modules(b, st);
  b.thread(100, "main");
  constexpr uint64_t kStacks = 230000;
  for (uint64_t i = 1; i <= kStacks; ++i) {
    b.stack(i, st.plain);
    if (i % 10000 == 0) b.cut_frame();  // frames as small as the library's
  }
  for (uint64_t i = 1; i <= kStacks; ++i) {
    b.alloc(static_cast<int64_t>(i) * 1000, 100, kA1 + 16 * i, 16, i);
    if (i % 10000 == 0) b.cut_frame();
  }
  b.json(Record::kEnd, R"({"reason":"stopped","truncated":false})");
  const std::string path = write(b.bytes());
  const auto start = std::chrono::steady_clock::now();
  const ProfileModel m = read_capture(path, {ProfileView::kAll, {}, true});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(m.uses.empty());
  EXPECT_THAT(m.warnings, testing::Contains(HasSubstr("the page shows the whole capture")));
  EXPECT_EQ(m.stacks.size(), 1u);
  EXPECT_EQ(m.stacks[0].count, kStacks);
  EXPECT_LT(seconds, 30.0);  // loose: a loaded machine passes, a rebuild per allocation does not
  std::printf("%lu uses from %lu stacks read in %.1f s\n", m.uses.size(), kStacks, seconds);
}

// Two captures of the same program: the second phase adds a site, drops one and keeps one as
// it was. The new site alone is the growth, with its exact bytes; the dropped one is "gone".
TEST_F(ProfilingTest, DiffShowsTheNewSiteAloneAsTheGrowth) {
  const Stacks st = real_stacks();
  auto capture = [&](bool second) {
    rsrtest::CaptureBuilder b;
    b.json(Record::kHeader, std::string(R"({"format":"rsrmem-capture","version":2,"kind":"background","id":"background_)") +
                                (second ? "2" : "1") + R"("})");
    add_modules(b, st);
    b.thread(100, "main");
    b.stack(1, st.plain);
    b.stack(2, st.outer);
    b.stack(3, st.session);
    int64_t t = 0;
    for (int i = 0; i < 2; ++i) b.alloc(++t, 100, kA1 + 64 * i, 100, 1);  // the same in both
    if (!second) b.alloc(++t, 100, kA2, 64, 2);                           // only in the first
    if (second)
      for (int i = 0; i < 5; ++i) b.alloc(++t, 100, kA3 + 4096 * i, 1000, 3);  // only in the second
    b.json(Record::kEnd, R"({"reason":"stopped","truncated":false})");
    return b.bytes();
  };
  ReportOptions o = report(write(capture(true), "second.bin"));
  o.base = write(capture(false), "first.bin");
  EXPECT_EQ(cmd_profile_diff(json(), o, io_), kExitOk);
  const Json j = Json::parse(out_.str());
  EXPECT_EQ(j["delta_bytes"], 5000 - 64);
  ASSERT_EQ(j["grew"].size(), 1u);
  EXPECT_THAT(j["grew"][0]["function"].get<std::string>(), HasSubstr("register_session"));
  EXPECT_EQ(j["grew"][0]["status"], "new");
  EXPECT_EQ(j["grew"][0]["delta_bytes"], 5000);
  EXPECT_EQ(j["grew"][0]["new_count"], 5);
  ASSERT_EQ(j["shrank"].size(), 1u);
  EXPECT_THAT(j["shrank"][0]["function"].get<std::string>(), HasSubstr("inlined_helper"));
  EXPECT_EQ(j["shrank"][0]["status"], "gone");
  EXPECT_EQ(j["shrank"][0]["delta_bytes"], -64);
  EXPECT_EQ(j["base"]["id"], "background_1");
  EXPECT_EQ(j["new"]["id"], "background_2");

  out_.str("");
  EXPECT_EQ(cmd_profile_diff(text(), o, io_), kExitOk);
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("Diff of background_2"));
  EXPECT_THAT(s, HasSubstr("against background_1"));
  const size_t grew = s.find("Grew or new"), shrank = s.find("Shrank or gone");
  ASSERT_NE(grew, std::string::npos);
  ASSERT_NE(shrank, std::string::npos);
  const std::string growth = s.substr(grew, shrank - grew);
  EXPECT_THAT(growth, HasSubstr("+4.88 KiB"));
  EXPECT_THAT(growth, HasSubstr("register_session"));
  EXPECT_THAT(growth, Not(HasSubstr("plain_function")));  // unchanged: in neither list
  EXPECT_THAT(s.substr(shrank), HasSubstr("gone"));

  // As call trees: the growth is register_session's stack alone, 5000 B; the shrinkage the
  // inlined helper's 64 B.
  o.diff_as = "tree";
  o.threshold = 0;
  out_.str("");
  EXPECT_EQ(cmd_profile_diff(json(), o, io_), kExitOk);
  const Json trees = Json::parse(out_.str());
  EXPECT_EQ(trees["grew"]["bytes"], 5000);
  EXPECT_EQ(trees["grew"]["count"], 5);
  EXPECT_EQ(trees["shrank"]["bytes"], 64);
  const std::string grew_tree = trees["grew"].dump(), shrank_tree = trees["shrank"].dump();
  EXPECT_THAT(grew_tree, HasSubstr("register_session"));
  EXPECT_THAT(grew_tree, Not(HasSubstr("plain_function")));
  EXPECT_THAT(grew_tree, Not(HasSubstr("inlined_helper")));
  EXPECT_THAT(shrank_tree, HasSubstr("inlined_helper"));
  EXPECT_THAT(shrank_tree, Not(HasSubstr("register_session")));
  out_.str("");
  EXPECT_EQ(cmd_profile_diff(text(), o, io_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("Grew from background_1 to background_2, all allocations:\n4.88 KiB  100.0%  in 5 allocations"));
  EXPECT_THAT(out_.str(), HasSubstr("Shrank:\n64 B  100.0%  in 1 allocation"));

  // As a flame graph: the page of the growth.
  o.diff_as = "flamegraph";
  out_.str("");
  err_.str("");
  EXPECT_EQ(cmd_profile_diff(text(), o, io_), kExitOk);
  const std::string page_path = dir_.path() + "/second-diff.html";
  EXPECT_THAT(err_.str(), HasSubstr("wrote " + page_path));
  const std::string page = rsrtest::read_file(page_path);
  EXPECT_THAT(page, HasSubstr("growth from background_1 to background_2"));
  EXPECT_THAT(page, HasSubstr("register_session"));
  EXPECT_THAT(page, Not(HasSubstr("plain_function")));
  // The second capture's own totals, timeline and threads are not the difference's.
  EXPECT_THAT(page, HasSubstr("\"kind\":\"difference\""));
  EXPECT_THAT(page, HasSubstr("\"allocations\":0,"));
  EXPECT_THAT(page, HasSubstr("\"peak_bytes\":0,"));
  EXPECT_THAT(page, HasSubstr("\"threads\":[],"));
  EXPECT_THAT(page, HasSubstr("\"live\":[]"));
}

TEST_F(ProfilingTest, SummaryJsonLeaks) {
  EXPECT_EQ(cmd_profile_summary(json(), report(write(scenario()), ProfileView::kLeaks), io_),
            kExitOk);
  const Json j = Json::parse(out_.str());
  EXPECT_EQ(j["view"], "leaks");
  EXPECT_EQ(j["totals"]["allocations"], 5);
  EXPECT_EQ(j["totals"]["peak_bytes"], 1088);
  EXPECT_EQ(j["view_bytes"], 264);
  ASSERT_EQ(j["top_functions"].size(), 1u);
  EXPECT_EQ(j["top_functions"][0]["function"], "rsrtest::inlined_helper");
  EXPECT_EQ(j["top_functions"][0]["bytes"], 264);
  EXPECT_EQ(j["top_functions"][0]["count"], 2);
  EXPECT_EQ(j["top_functions"][0]["line"], rsrtest::inlined_call_line);
}

TEST_F(ProfilingTest, StatsTextAndJson) {
  const std::string path = write(scenario());
  EXPECT_EQ(cmd_profile_stats(text(), report(path), io_), kExitOk);
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("Top allocators by count:"));
  EXPECT_THAT(s, HasSubstr("Top allocators by bytes:"));
  EXPECT_THAT(s, HasSubstr("512 B - 1023 B"));
  EXPECT_THAT(s, HasSubstr("worker"));
  out_.str("");
  EXPECT_EQ(cmd_profile_stats(json(), report(path), io_), kExitOk);
  const Json j = Json::parse(out_.str());
  uint64_t hist_count = 0, hist_bytes = 0;
  for (const Json& b : j["size_histogram"]) {
    hist_count += b["count"].get<uint64_t>();
    hist_bytes += b["bytes"].get<uint64_t>();
  }
  EXPECT_EQ(hist_count, 5u);
  EXPECT_EQ(hist_bytes, 1388u);
  EXPECT_EQ(j["top_by_bytes"][0]["function"], "rsrtest::register_session");
  EXPECT_EQ(j["top_by_count"][0]["count"], 2);
  EXPECT_EQ(j["threads"][1]["tid"], 200);
  EXPECT_EQ(j["threads"][1]["allocations"], 2);
}

TEST_F(ProfilingTest, TableTextJsonAndTop) {
  const std::string path = write(scenario());
  EXPECT_EQ(cmd_profile_table(text(), report(path, ProfileView::kTemporary), io_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("124 B"));
  EXPECT_THAT(out_.str(), HasSubstr("100.0%"));
  EXPECT_THAT(out_.str(), HasSubstr("rsrtest::plain_function"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("register_session")));
  out_.str("");
  ReportOptions o = report(path);
  o.top = 2;
  EXPECT_EQ(cmd_profile_table(json(), o, io_), kExitOk);
  const Json j = Json::parse(out_.str());
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["total_rows"], 3);
  EXPECT_EQ(j["rows"][0]["function"], "rsrtest::register_session");
  EXPECT_EQ(j["rows"][0]["bytes"], 1000);
  EXPECT_EQ(j["rows"][0]["line"], rsrtest::o0_push_line);
  EXPECT_NEAR(j["rows"][0]["share"].get<double>(), 1000.0 / 1388, 1e-9);
}

TEST_F(ProfilingTest, TreeTextAndJson) {
  const std::string path = write(scenario());
  ReportOptions o = report(path);
  o.threshold = 0;
  EXPECT_EQ(cmd_profile_tree(text(), o, io_), kExitOk);
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("1.36 KiB  100.0%  in 5 allocations"));
  EXPECT_THAT(s, HasSubstr("rsrtest::outer_function"));
  EXPECT_THAT(s, HasSubstr("rsrtest::inlined_helper"));
  // The helper sits under its host.
  EXPECT_LT(s.find("outer_function"), s.find("inlined_helper"));
  out_.str("");
  o.threshold = 50;  // only the 1000-byte branch stays
  EXPECT_EQ(cmd_profile_tree(json(), o, io_), kExitOk);
  const Json j = Json::parse(out_.str());
  EXPECT_EQ(j["tree"]["bytes"], 1388);
  ASSERT_EQ(j["tree"]["children"].size(), 1u);
  EXPECT_EQ(j["tree"]["children"][0]["bytes"], 1000);
  EXPECT_EQ(j["tree"]["hidden_bytes"], 388);
}

// An allocation wrapper named by the capture's header (RSR_ALLOCATOR_WRAPPERS) is folded into
// its caller in every report: the stack starts at the wrapper's caller.
TEST_F(ProfilingTest, AllocationWrappersAreFoldedIntoTheirCallers) {
  const Stacks s = real_stacks();
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader,
         R"({"format":"rsrmem-capture","version":1,"id":"background_1764400000",)"
         R"("kind":"background","pid":4242,"program":"/usr/bin/svc","service":"svc",)"
         R"("allocator_wrappers":"rsrtest::plain_*","start_time":1764400000.0,"duration_s":1})");
  add_modules(b, s);
  b.thread(100, "main");
  // operator new, called by plain_function (a wrapper here), called by outer_function.
  b.stack(1, {s.outer[0], s.plain[0], s.outer[1]});
  b.alloc(1000, 100, kA1, 100, 1);
  const std::string path = write(b.bytes());
  const ProfileModel m = read_capture(path);
  ASSERT_EQ(m.stacks.size(), 1u);
  ASSERT_FALSE(m.stacks[0].frames.empty());
  EXPECT_THAT(m.stacks[0].frames[0].function, HasSubstr("rsrtest::inlined_helper"));
  for (const ProfileFrame& f : m.stacks[0].frames) EXPECT_THAT(f.function, Not(HasSubstr("plain_function")));
  ReportOptions o = report(path);
  o.export_format = "folded";
  ASSERT_EQ(cmd_profile_export(o, io_), kExitOk);
  ASSERT_EQ(cmd_profile_tree(text(), o, io_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("rsrtest::outer_function"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("plain_function")));
}

TEST_F(ProfilingTest, ReportOnMissingFileThrowsNotFound) {
  try {
    cmd_profile_table(text(), report(dir_.path() + "/nope.bin"), io_);
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
  }
}

TEST(ProfilingDuration, Parses) {
  EXPECT_DOUBLE_EQ(parse_profiling_duration("10"), 600);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("0.5"), 30);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("30s"), 30);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("2m"), 120);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("1.5s"), 1.5);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("1h"), 3600);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("24h"), 86400);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("25h"), 90000);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("1h30m"), 5400);
  EXPECT_DOUBLE_EQ(parse_profiling_duration("7d"), 604800);
  for (const char* bad : {"", "abc", "-1", "0", "0.5s", "10x", "s", "1e9", "8d", "2 m", "nan", "10081"}) {
    try {
      parse_profiling_duration(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_THAT(e.what(), HasSubstr("--duration"));
    }
  }
}

// Each refusal says what is wrong with the value, not just that it is wrong.
TEST(ProfilingDuration, SaysWhatIsWrong) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"169h", "longer than 7 days"},
      {"10081", "longer than 7 days"},
      {"1e999", "unknown unit 'e'"},
      {"inf", "not a number"},
      {"-1", "negative"},
      {"-30s", "negative"},
      {"0", "shorter than 1 second"},
      {"0.5s", "shorter than 1 second"},
      {"soon", "not a number"},
      {"10x", "unknown unit 'x' (s, m, h or d)"},
      {"1h30", "'30' has no unit"},
  };
  for (const auto& [text, why] : cases) {
    try {
      parse_profiling_duration(text);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), kExitUsage);
      EXPECT_THAT(e.what(), HasSubstr("bad --duration '" + text + "': " + why)) << text;
      EXPECT_THAT(e.what(), HasSubstr("from 1 second to 7 days")) << text;
    }
  }
}

TEST(ProfilingId, Validates) {
  EXPECT_TRUE(valid_profile_id("background_1764400000"));
  EXPECT_TRUE(valid_profile_id("scope_checkout-v2_1764400000"));
  EXPECT_FALSE(valid_profile_id("background_"));
  EXPECT_FALSE(valid_profile_id("other_1"));
  EXPECT_FALSE(valid_profile_id("background_../../etc"));
  EXPECT_FALSE(valid_profile_id("background_a b"));
  EXPECT_FALSE(valid_profile_id("background_" + std::string(81, 'a')));
  EXPECT_TRUE(valid_profile_id("background_" + std::string(80, 'a')));
}

// ---- cleanup-profiles ----

void age(const std::string& path, double days) {
  const time_t t = time(nullptr) - static_cast<time_t>(days * 86400);
  const timespec times[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

TEST_F(ProfilingTest, CleanupRemovesOnlyOldCaptures) {
  const std::string capture = scenario();
  const std::string d = dir_.path();
  const std::string old1 = write(capture, "profile_20240101_120000_1.bin");
  const std::string old2 = write(capture, "scope_req_20240101_120000_1_1.bin");
  const std::string old_part = write(capture, "profile_20240101_130000_1.bin.part");
  const std::string young = write(capture, "profile_20991231_120000_1.bin");
  const std::string not_capture = write("just text", "profile_20240101_120000_2.bin");
  const std::string other_name = write(capture, "notes.bin");
  const std::string target = write(capture, "outside.dat");
  ASSERT_EQ(symlink(target.c_str(), (d + "/profile_20240101_120000_3.bin").c_str()), 0);
  for (const std::string& p : {old1, old2, old_part, not_capture, other_name, target}) age(p, 10);
  age(d + "/profile_20240101_120000_3.bin", 10);
  age(young, 1);

  CleanupOptions o;
  o.days = 7;
  o.dir = d;
  EXPECT_EQ(cmd_cleanup_profiles(GlobalOptions{}, o, io_), kExitOk);
  auto exists = [](const std::string& p) {
    struct stat st {};
    return lstat(p.c_str(), &st) == 0;
  };
  EXPECT_FALSE(exists(old1));
  EXPECT_FALSE(exists(old2));
  EXPECT_FALSE(exists(old_part));
  EXPECT_TRUE(exists(young));
  EXPECT_TRUE(exists(not_capture));
  EXPECT_TRUE(exists(other_name));
  EXPECT_TRUE(exists(target));
  EXPECT_TRUE(exists(d + "/profile_20240101_120000_3.bin"));
  EXPECT_THAT(out_.str(), HasSubstr("removed " + old1));
  EXPECT_THAT(out_.str(), HasSubstr("Removed 3 files"));

  // --days 0: every capture, the young one too; JSON lists it.
  out_.str("");
  o.days = 0;
  GlobalOptions g;
  g.format = OutputFormat::kJson;
  EXPECT_EQ(cmd_cleanup_profiles(g, o, io_), kExitOk);
  const Json j = Json::parse(out_.str());
  ASSERT_EQ(j["removed"].size(), 1u);
  EXPECT_EQ(j["removed"][0]["file"], young);
  EXPECT_EQ(j["removed_bytes"], capture.size());
  EXPECT_TRUE(exists(not_capture));
}

TEST_F(ProfilingTest, CleanupKeepsFreshPartAndDefaultsFromEnvironment) {
  const std::string capture = scenario();
  const std::string part = write(capture, "profile_20240101_130000_1.bin.part");
  const std::string old = write(capture, "profile_20240101_120000_1.bin");
  age(old, 3);
  setenv("RSR_PROFILING_OUTPUT_DIR", dir_.path().c_str(), 1);
  setenv("RSR_PROFILING_CLEANUP_DAYS", "2", 1);
  EXPECT_EQ(cmd_cleanup_profiles(GlobalOptions{}, CleanupOptions{}, io_), kExitOk);
  unsetenv("RSR_PROFILING_OUTPUT_DIR");
  unsetenv("RSR_PROFILING_CLEANUP_DAYS");
  struct stat st {};
  EXPECT_NE(lstat(old.c_str(), &st), 0);
  EXPECT_EQ(lstat(part.c_str(), &st), 0);
}

TEST_F(ProfilingTest, CleanupRefusesSymlinkedDirAndToleratesMissingDir) {
  const std::string link = dir_.path() + "/link";
  ASSERT_EQ(symlink("/tmp", link.c_str()), 0);
  CleanupOptions o;
  o.dir = link;
  o.days = 0;
  try {
    cmd_cleanup_profiles(GlobalOptions{}, o, io_);
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitUsage);
  }
  o.dir = dir_.path() + "/absent";
  EXPECT_EQ(cmd_cleanup_profiles(GlobalOptions{}, o, io_), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("nothing to clean up"));
}

// ---- start/stop-profiling against a fake server ----

class ProfilingCommandsTest : public ProfilingTest {
 protected:
  GlobalOptions target(OutputFormat format = OutputFormat::kText) const {
    GlobalOptions g;
    g.target.mode = TargetMode::kPid;
    g.target.dir = dir_.path();
    g.target.pid = getpid();
    g.format = format;
    g.timeout = std::chrono::milliseconds(2000);
    return g;
  }
  std::string socket() const { return dir_.path() + "/" + std::to_string(getpid()) + ".sock"; }
};

Json common_fields() {
  return Json{{"ok", true}, {"pid", getpid()}, {"service", "svc"}, {"protocol", 1}};
}

std::string refusal(const std::string& message) {
  return rsrtest::frame(rsr::proto::Kind::kError,
                        Json{{"ok", false}, {"error", message}}.dump());
}

TEST_F(ProfilingCommandsTest, StartSendsSecondsAndPrintsId) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    Json r = common_fields();
    r["id"] = "background_1764400000";
    r["path"] = "/tmp/rsr_memory_profiles/profile_20251129_070000_1.bin";
    r["duration_s"] = 30;
    r["max_bytes"] = 104857600;
    return rsrtest::reply(r.dump());
  });
  EXPECT_EQ(cmd_start_profiling(target(), 30, io_), kExitOk);
  const Json req = Json::parse(server.requests().at(0));
  EXPECT_EQ(req, Json::parse(R"({"cmd":"start_profiling","duration_s":30})"));
  const std::string s = out_.str();
  EXPECT_EQ(s.substr(0, s.find('\n')), "background_1764400000");
  EXPECT_THAT(s, HasSubstr("profile_20251129_070000_1.bin"));
  EXPECT_THAT(s, HasSubstr("at most 100.0 MiB"));
}

TEST_F(ProfilingCommandsTest, StartRefusedExitsFour) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    return refusal("profiling is disabled (set RSR_PROFILING_ENABLED=true)");
  });
  EXPECT_EQ(cmd_start_profiling(target(), 60, io_), kExitConnection);
  EXPECT_THAT(err_.str(), HasSubstr("RSR_PROFILING_ENABLED"));
}

TEST_F(ProfilingCommandsTest, StopWithoutIdListsProfilers) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    Json r = common_fields();
    r["profilers"] = Json::array({Json{{"id", "background_1764400000"},
                                       {"kind", "background"},
                                       {"path", "/tmp/p/profile_x.bin.part"},
                                       {"elapsed_s", 12},
                                       {"duration_s", 600},
                                       {"events", 12345},
                                       {"bytes", 4096},
                                       {"dropped_events", 7}}});
    return rsrtest::reply(r.dump());
  });
  EXPECT_EQ(cmd_stop_profiling(target(), "", io_), kExitOk);
  EXPECT_EQ(Json::parse(server.requests().at(0)), Json::parse(R"({"cmd":"stop_profiling"})"));
  const std::string s = out_.str();
  EXPECT_THAT(s, HasSubstr("--profile-id"));
  EXPECT_THAT(s, HasSubstr("background_1764400000"));
  EXPECT_THAT(s, HasSubstr("12,345 events, 4.00 KiB"));
  EXPECT_THAT(s, HasSubstr("dropped   7 events"));
}

TEST_F(ProfilingCommandsTest, StopWithoutIdNoneActive) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    Json r = common_fields();
    r["profilers"] = Json::array();
    return rsrtest::reply(r.dump());
  });
  EXPECT_EQ(cmd_stop_profiling(target(), "", io_), kExitOk);
  EXPECT_EQ(out_.str(), "No active profiling captures.\n");
}

TEST_F(ProfilingCommandsTest, StopWithIdPrintsStopped) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    Json r = common_fields();
    r["stopped"] = Json{{"id", "background_1764400000"},
                        {"path", "/tmp/p/profile_x.bin"},
                        {"events", 10},
                        {"bytes", 2048},
                        {"reason", "stopped"}};
    return rsrtest::reply(r.dump());
  });
  EXPECT_EQ(cmd_stop_profiling(target(OutputFormat::kJson), "background_1764400000", io_),
            kExitOk);
  EXPECT_EQ(Json::parse(server.requests().at(0)),
            Json::parse(R"({"cmd":"stop_profiling","id":"background_1764400000"})"));
  EXPECT_EQ(Json::parse(out_.str())["stopped"]["reason"], "stopped");
}

TEST_F(ProfilingCommandsTest, StopUnknownIdIsTheRefusal) {
  rsrtest::FakeServer server(socket(), [](const std::string&) {
    return refusal("no active profiling capture 'background_1'");
  });
  EXPECT_EQ(cmd_stop_profiling(target(), "background_1", io_), kExitConnection);
  EXPECT_THAT(err_.str(), HasSubstr("no active profiling capture 'background_1'"));
}

TEST_F(ProfilingCommandsTest, StopBadIdIsUsageAndSendsNothing) {
  rsrtest::FakeServer server(socket(), [](const std::string&) { return std::string(); });
  try {
    cmd_stop_profiling(target(), "../etc/passwd", io_);
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_THAT(e.what(), HasSubstr("--profile-id"));
  }
  EXPECT_TRUE(server.requests().empty());
}

// ---- the commands as rsrmemctl wires them ----

TEST_F(ProfilingTest, CommandLine) {
  const char* ctl = std::getenv("RSRMEMCTL");
  if (!ctl) GTEST_SKIP() << "RSRMEMCTL not set (run through meson test)";
  const std::string path = write(scenario());
  rsrtest::Result r = rsrtest::run({ctl, "summary", path, "--leaks", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["view_bytes"], 264);
  r = rsrtest::run({ctl, "table", path, "--temporary", "--top", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("rsrtest::plain_function"));
  r = rsrtest::run({ctl, "tree", path, "--depth", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(--depth 1)"));
  r = rsrtest::run({ctl, "stats", path});
  EXPECT_EQ(r.code, 0) << r.err;
  r = rsrtest::run({ctl, "export", path, "--format", "folded"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("register_session"));
  r = rsrtest::run({ctl, "flamegraph", path});
  EXPECT_EQ(r.code, 0) << r.err;
  struct stat st {};
  EXPECT_EQ(stat((dir_.path() + "/profile_x.html").c_str(), &st), 0);

  EXPECT_EQ(rsrtest::run({ctl, "summary", path, "--leaks", "--temporary"}).code, kExitUsage);
  EXPECT_EQ(rsrtest::run({ctl, "summary", path, "--pid", "1"}).code, kExitUsage);
  EXPECT_EQ(rsrtest::run({ctl, "summary"}).code, kExitUsage);
  r = rsrtest::run({ctl, "summary", dir_.path() + "/absent.bin"});
  EXPECT_EQ(r.code, kExitNotFound);
  EXPECT_THAT(r.err, HasSubstr("absent.bin"));
  EXPECT_EQ(rsrtest::run({ctl, "table", write("garbage", "g.bin")}).code, kExitUsage);
  EXPECT_EQ(rsrtest::run({ctl, "start-profiling", "--duration=soon"}).code, kExitUsage);
  r = rsrtest::run({ctl, "start-profiling", "--duration=8d"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("longer than 7 days"));
  // Seconds options take units too, and say what is wrong.
  r = rsrtest::run({ctl, "--timeout", "5x", "list"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--timeout: bad length of time '5x': unknown unit 'x' (s, m, h or d)"));
  r = rsrtest::run({ctl, "push", "--interval", "2d"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("--interval: '2d' is out of range (from 0.1 s to 1 day)"));
  EXPECT_EQ(rsrtest::run({ctl, "--timeout", "1m30s", "list"}).code, 0);
  for (const char* negative : {"--duration=-1", "--duration=-1m"}) {
    r = rsrtest::run({ctl, "start-profiling", negative});
    EXPECT_EQ(r.code, kExitUsage) << negative;
    EXPECT_THAT(r.err, HasSubstr("negative")) << negative;
  }
  EXPECT_EQ(rsrtest::run({ctl, "start-profiling"}).code, kExitUsage);
  EXPECT_EQ(rsrtest::run({ctl, "stop-profiling", "--profile-id=x/y"}).code, kExitUsage);
  r = rsrtest::run({ctl, "cleanup-profiles", "--dir", dir_.path(), "--days", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("No captures older than 1 days"));
}

}  // namespace
