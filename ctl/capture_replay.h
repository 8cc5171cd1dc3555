// Replays a capture's event records (common/capture.md: TIMES, SWITCH, INFO, ALLOC, FREE,
// COUNTERS) and keeps what the reports need: the blocks live at each moment (for the peak and
// the --leaks view), temporary allocations, and totals per stack, per thread and per size.
//
// The library writes events in time order and names each freed block by its pair and position,
// so the replay is one pass with no reordering: what it holds is the blocks live at that point of
// the capture (a few dozen bytes each), the (size, stack) pairs and the threads. A record that
// contradicts what came before (an unknown pair, a free of a block that is not live) is
// malformed: the caller counts it and it changes nothing.
//
// held_bytes() estimates what the replay holds (capture_limits.h), so the reader can stop a file
// that would make it hold too much. Not thread-safe: one replay per read.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "flat_map.h"
#include "profile_model.h"

namespace rsr::ctl {

struct ReplayTotals {
  uint64_t count = 0, bytes = 0;
  void add(uint64_t size, uint64_t n = 1) {
    count += n;
    bytes += size * n;
  }
};

// What one stack id allocated, in each view.
struct StackTotals {
  ReplayTotals all, live, temporary;
};

// What one stack id allocated on one thread in one span of time, and when those blocks were
// freed (ProfileModel::uses, with a capture's stack id in place of the model's stack).
struct ReplayUse {
  uint64_t stack;
  uint32_t thread;  // index in ProfileModel::threads
  uint32_t alloc_span, free_span;  // free_span: StackUse::kStillLive
  uint64_t count, bytes;
};

class Replay {
 public:
  explicit Replay(ProfileModel& model);

  // Keep allocations by stack, thread and time for `view` (ProfileModel::uses): every block for
  // the all and leaks views, the temporary ones for the temporary view.
  void keep_uses(ProfileView view);

  void set_time_unit(uint64_t ns) { unit_ns_ = ns ? ns : 1; }
  // A TIMES entry: the next `count` ALLOC and FREE records happened `units` after the previous
  // entry's time.
  void times(uint64_t units, uint64_t count);
  void switch_thread(uint64_t tid);
  void name_thread(uint64_t tid, std::string_view name);
  // False for a malformed record (see above).
  bool info(uint64_t size, uint64_t stack);
  bool alloc(uint64_t info);
  bool free(uint64_t info, uint64_t distance);
  void counters(uint64_t at_units, uint64_t heap_bytes, uint64_t rss_bytes);

  // Fills the model's live totals, size histogram and threads for `view`.
  void fill(ProfileView view);

  // Totals per stack id, summed over the (size, stack) pairs.
  std::unordered_map<uint64_t, StackTotals> stacks() const;
  // After fill(): the uses kept, and the length of their spans in seconds. uses_dropped(): there
  // were too many to keep (more than 200,000 with one span covering the capture), none are.
  std::vector<ReplayUse> uses() const;
  double use_step_s() const;
  bool uses_dropped() const { return uses_dropped_; }
  int64_t last_time() const { return static_cast<int64_t>(now_ * unit_ns_); }
  // Estimated bytes held now (capture_limits.h).
  uint64_t held_bytes() const;

 private:
  struct Info {
    uint64_t size, stack;
    uint64_t all = 0, live = 0, temporary = 0;  // allocations
  };
  // A live block: its pair and which of the pair's ALLOCs it was (from 1).
  using Key = KeyPair;
  struct Live {
    uint32_t thread;  // index in threads_
    uint32_t born;    // timeline span at the allocation | the timeline's doublings then << 16
  };
  struct UseTotals {
    uint64_t count, bytes;
  };
  struct ThreadState {
    uint64_t tid = 0;
    std::string name;
    ReplayTotals all, temporary;
    Key pending{};  // the thread's latest allocation while it may be temporary
  };
  static void* mem_alloc(size_t n);
  static void mem_release(void* p);

  uint32_t thread_index(uint64_t tid);
  // The timeline's span for time `at`, spans merged in pairs when there would be too many.
  TimePoint& span(uint64_t at);
  // Moves now_ to the next ALLOC or FREE record's time.
  void next_event_time();
  void count(std::vector<SizeBucket>& hist, uint64_t size);
  // A kept use: keyed (stack + 1, thread << 32 | alloc span << 16 | free span), spans in use
  // spans (timeline spans >> use_shift_).
  void add_use(uint64_t stack, uint32_t thread, uint32_t born, uint32_t free_span, uint64_t size);
  // Halves the kept uses' spans (the timeline's doubled, or too many uses are kept).
  void halve_uses();

  ProfileModel& model_;
  uint64_t unit_ns_ = 1, now_ = 0;
  std::vector<Info> infos_;
  FlatMap<Key, Live, KeyPairHash> live_;
  uint64_t live_bytes_ = 0;
  std::vector<ThreadState> threads_;
  std::unordered_map<uint64_t, uint32_t> thread_at_;
  uint32_t thread_ = 0;  // the current SWITCH's
  uint64_t name_bytes_ = 0;
  std::vector<SizeBucket> hist_all_, hist_temp_;
  std::deque<std::pair<uint64_t, uint64_t>> times_;  // (time, records) not yet reached
  uint64_t times_end_ = 0;                           // the last entry's time
  uint64_t left_ = 0;                                // records left at now_
  std::vector<TimePoint> spans_{1};
  uint64_t span_units_ = 1;  // time units per span
  uint32_t doublings_ = 0;   // of span_units_
  bool keep_uses_ = false, uses_dropped_ = false;
  ProfileView uses_view_ = ProfileView::kAll;
  FlatMap<Key, UseTotals, KeyPairHash> uses_;
  uint32_t use_shift_ = 0;
};

}  // namespace rsr::ctl
