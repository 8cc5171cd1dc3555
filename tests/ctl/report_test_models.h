// ProfileModels built by hand for the report writers' tests: known functions (one with an
// inlined std::vector call, names full of < > & " ; and one that would end a <script> block),
// known totals, and a large random model for the size and speed checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "profile_model.h"

namespace rsrtest {

using rsr::ctl::ModuleInfo;
using rsr::ctl::ProfileFrame;
using rsr::ctl::ProfileModel;
using rsr::ctl::ProfileStack;
using rsr::ctl::ProfileView;

inline constexpr const char* kService = "/usr/bin/demo-service";
inline constexpr const char* kLibstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
inline constexpr const char* kPushBack = "std::vector<int, std::allocator<int> >::push_back(int const&)";
inline constexpr const char* kRegister = "register_session(Session const&)";
inline constexpr const char* kNew = "operator new(unsigned long)";
inline constexpr const char* kEvil = "</script><script>alert(\"x&y\")</script>";
inline constexpr const char* kHandler = "handler<a;b>::run()";

inline ProfileFrame frame(uint64_t address, const std::string& function, const std::string& file,
                          int line, const std::string& module, bool inlined = false) {
  return {address, function, file, line, module, inlined};
}

// Four stacks, 1350 bytes in 20 allocations:
//   main;register_session;[inlined] std::vector<int>::push_back;operator new  1000 B, 10
//   main;</script>...;operator new                                            300 B, 3
//   main;handler<a;b>::run()                                                    50 B, 5
//   main;zero_sized()                                                            0 B, 2
inline ProfileModel small_model(ProfileView view = ProfileView::kAll) {
  ProfileModel m;
  m.id = "background_1700000000";
  m.kind = "background";
  m.service = "demo";
  m.program = kService;
  m.pid = 4242;
  m.start_time = 1700000000.25;
  m.duration_s = 12.5;
  m.end_reason = "size_limit";
  m.truncated = true;
  m.view = view;
  m.allocations = 20;
  m.frees = 7;
  m.allocated_bytes = 1350;
  m.freed_bytes = 330;
  m.peak_bytes = 1200;
  m.live_bytes_at_end = 1020;
  m.live_blocks_at_end = 13;
  m.dropped_events = 3;
  m.threads = {{4242, "main"}, {4243, "worker"}};
  m.modules = {
      {kService, "abcd1234", 0, 0x400000, 0x500000, true},
      {kLibstdcxx, "ef567890", 0x7f0000000000, 0x7f0000000000, 0x7f0000200000, true},
  };
  const ProfileFrame op_new = frame(0x7f0000001000, kNew, "", 0, kLibstdcxx);
  const ProfileFrame main10 = frame(0x400900, "main", "src/main.cc", 10, kService);
  m.stacks = {
      {{op_new,
        frame(0x401100, kPushBack, "/usr/include/c++/12/bits/stl_vector.h", 1287, kService, true),
        frame(0x401100, kRegister, "src/sessions.cc", 42, kService), main10},
       1000, 10},
      {{op_new, frame(0x401200, kEvil, "src/evil&co.cc", 7, kService),
        frame(0x400920, "main", "src/main.cc", 12, kService)},
       300, 3},
      {{frame(0x401300, kHandler, "src/h.cc", 3, kService), main10}, 50, 5},
      {{frame(0x401400, "zero_sized()", "src/z.cc", 1, kService), main10}, 0, 2},
  };
  return m;
}

// `stacks` random stacks 8 to 40 frames deep over 2000 functions, like a large service's
// capture.
inline ProfileModel large_model(size_t stacks) {
  ProfileModel m = small_model();
  m.stacks.clear();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> depth(8, 40), fn(0, 1999), fanout(0, 5);
  for (size_t s = 0; s < stacks; ++s) {
    ProfileStack st;
    const int d = depth(rng);
    for (int k = 0; k < d; ++k) {
      // Shallow frames come from a few functions (shared prefixes), deep ones from many.
      const int f = k < 4 ? fanout(rng) + 10 * k : fn(rng);
      st.frames.push_back(frame(0x400000 + 16 * f, "ns::function_" + std::to_string(f) + "<int>()",
                                "src/f" + std::to_string(f % 50) + ".cc", f, kService));
    }
    std::reverse(st.frames.begin(), st.frames.end());
    st.count = 1 + s % 7;
    st.bytes = 16 * st.count * (1 + s % 100);
    m.stacks.push_back(std::move(st));
  }
  return m;
}

// A second of capture in 100 spans of 10 ms, with the uses the flamegraph page filters by time
// and thread:
//   main;register_session   thread 4242 (main):   10 x 100 B at 0.10-0.19 s; the first 5 freed
//                           at 0.30 s, the other 5 still live at the end
//   main;handler<a;b>::run  thread 4243 (worker): 20 x 50 B at 0.50-0.69 s, all freed at 0.80 s
// All: 2000 B in 30; leaks: 500 B in 5 (register_session), the handler stack kept with none.
inline ProfileModel timed_model(ProfileView view = ProfileView::kAll) {
  ProfileModel m = small_model(view);
  m.truncated = false;
  m.dropped_events = 0;
  m.duration_s = 1;
  const ProfileFrame main10 = frame(0x400900, "main", "src/main.cc", 10, kService);
  const bool leaks = view == ProfileView::kLeaks;
  m.stacks = {{{frame(0x401100, kRegister, "src/sessions.cc", 42, kService), main10}, leaks ? 500u : 1000u,
               leaks ? 5u : 10u},
              {{frame(0x401300, kHandler, "src/h.cc", 3, kService), main10}, leaks ? 0u : 1000u, leaks ? 0u : 20u}};
  m.threads = {{4242, "main"}, {4243, "worker"}};
  m.timeline_step_s = 0.01;
  m.use_step_s = 0.01;
  uint64_t live = 0;
  for (uint32_t span = 0; span < 100; ++span) {
    if (span >= 10 && span < 20) live += 100;
    if (span == 30) live -= 500;
    if (span >= 50 && span < 70) live += 50;
    if (span == 80) live -= 1000;
    m.timeline.push_back({span * 0.01, live, 4096 + live, 65536});
  }
  for (uint32_t span = 10; span < 20; ++span) m.uses.push_back({0, 0, span, span < 15 ? 30u : rsr::ctl::StackUse::kStillLive, 1, 100});
  for (uint32_t span = 50; span < 70; ++span) m.uses.push_back({1, 1, span, 80, 1, 50});
  return m;
}

}  // namespace rsrtest
