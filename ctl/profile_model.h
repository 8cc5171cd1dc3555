// A capture reduced to what the reports draw: symbolized call stacks with their totals, for one
// view of the capture (every allocation, what was still live at the end, or temporary
// allocations). Built from a capture file by the reader; read by flamegraph, table, tree,
// summary, stats and the pprof and folded exports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "symbolizer.h"

namespace rsr::ctl {

enum class ProfileView {
  kAll,        // every allocation made during the capture
  kLeaks,      // allocations still live when the capture ended (--leaks)
  kTemporary,  // allocations freed soon after, by the same thread, with no allocation of that
               // thread in between (--temporary; memray's definition)
};

// "all", "leaks" or "temporary": the view's key in JSON reports and the flamegraph page.
inline const char* view_name(ProfileView view) {
  switch (view) {
    case ProfileView::kLeaks: return "leaks";
    case ProfileView::kTemporary: return "temporary";
    case ProfileView::kAll: break;
  }
  return "all";
}

// One frame of a stack as reports show it. An address whose symbolization found inlined calls is
// expanded into several ProfileFrames: the innermost inlined function first, the containing
// function last, all with the same `address`.
struct ProfileFrame {
  uint64_t address = 0;  // return address as captured; 0 for a synthetic frame
  std::string function;  // demangled; "module+0xoffset" or "0xaddress" when unresolved
  std::string file;      // "" when unknown
  int line = 0;          // 0 when unknown
  std::string module;    // module path; "" when unknown
  bool inlined = false;  // an inlined call inside the next frame's function
};

// Allocations of a view whose size falls in one power-of-two bucket (see size_bucket()).
struct SizeBucket {
  uint64_t count = 0;
  uint64_t bytes = 0;
};

// One distinct call stack of the view with its totals.
struct ProfileStack {
  std::vector<ProfileFrame> frames;  // innermost (the allocation's caller) first, root last
  uint64_t bytes = 0;                // bytes allocated through this stack (in this view)
  uint64_t count = 0;                // allocations through this stack (in this view)
  // Index in `frames` of the first frame of the service's own code (site_stacks.h's
  // first_user_frame: std::, allocator and system-library frames passed over); the first frame
  // when none is user code; -1 for an empty stack.
  int user_frame = -1;
};

// Memory over a span of the capture: the highest readings within it.
struct TimePoint {
  double t_s = 0;            // the span's start, seconds from the capture's start
  uint64_t live_bytes = 0;   // blocks allocated during the capture and live
  uint64_t heap_bytes = 0;   // the process's whole heap (COUNTERS); 0: no reading in the span
  uint64_t rss_bytes = 0;    // its resident memory (COUNTERS); 0: no reading in the span
};

// What one stack of the view allocated on one thread in one span of time (ProfileModel::
// use_step_s long, from the capture's start), and in which span those blocks were freed: what
// the flamegraph page redraws for a time range and a thread.
struct StackUse {
  static constexpr uint32_t kStillLive = UINT32_MAX;  // free_span: not freed during the capture
  uint32_t stack = 0;       // index in ProfileModel::stacks
  uint32_t thread = 0;      // index in ProfileModel::threads
  uint32_t alloc_span = 0, free_span = kStillLive;
  uint64_t count = 0, bytes = 0;
};

struct ProfileThread {
  uint64_t tid = 0;
  std::string name;
  uint64_t allocations = 0;  // in the view
  uint64_t bytes = 0;        // in the view
};

struct ProfileModel {
  // From the capture's header and trailer.
  std::string id;            // "background_<epoch>" or "scope_<name>_<epoch>"
  std::string kind;          // "background" or "scope"
  std::string service, program;
  int64_t pid = 0;
  double start_time = 0;     // unix seconds
  double duration_s = 0;     // as recorded (to the last event or the end record)
  std::string end_reason;    // "duration", "stopped", "size_limit", "write_error", "exit", "scope_end"
  bool truncated = false;    // the capture stopped before its duration (size cap, disk, exit)
  ProfileView view = ProfileView::kAll;

  // Totals over the whole capture, whatever the view.
  uint64_t allocations = 0, frees = 0;
  uint64_t allocated_bytes = 0, freed_bytes = 0;
  uint64_t peak_bytes = 0;          // highest sum of live bytes of the capture's own allocations
  double peak_time_s = 0;           // when it was first reached, seconds from the capture's start
  // The process's whole heap and resident memory at their highest over the capture, as the
  // library read them (every 100 ms); 0 when the capture has no such readings (scopes).
  uint64_t process_peak_heap_bytes = 0, process_peak_rss_bytes = 0;
  // Memory over the capture in at most kTimelinePoints spans of `timeline_step_s` each, from the
  // capture's start to its last event.
  static constexpr size_t kTimelinePoints = 512;
  std::vector<TimePoint> timeline;
  double timeline_step_s = 0;
  uint64_t live_bytes_at_end = 0;   // what --leaks shows, in bytes
  uint64_t live_blocks_at_end = 0;
  uint64_t dropped_events = 0;      // events lost because the writer fell behind
  std::vector<ProfileThread> threads;
  std::vector<ModuleInfo> modules;

  // The view's stacks, largest `bytes` first.
  std::vector<ProfileStack> stacks;
  // Only when read with CaptureReadOptions::uses: the view's allocations by stack, thread and
  // time. For the leaks view they hold every allocation, freed or not (the page shows what was
  // live at the end of a range), and `stacks` holds every stack that allocated (some with no
  // bytes in the view).
  std::vector<StackUse> uses;
  double use_step_s = 0;

  // Also from the capture.
  std::string scope;           // scope captures: the scope's name
  std::string hostname;
  double requested_duration_s = 0;
  bool complete = false;        // the END record was read
  bool file_truncated = false;  // the file ends early or is corrupt; read up to the damage
  uint64_t view_allocations = 0, view_bytes = 0;  // sums over `stacks`
  std::vector<SizeBucket> size_histogram;         // the view's allocations; 65 buckets
  std::vector<std::string> warnings;  // truncation, malformed records, symbolization problems
};

}  // namespace rsr::ctl
