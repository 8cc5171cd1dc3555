// Replays a capture's ALLOC and FREE events in time order and keeps what the reports need: the
// blocks live at each moment (for the peak and the --leaks view), temporary allocations, and
// totals per stack, per thread and per size.
//
// Threads' buffers reach the file in batches, so file order is not time order: events are held
// back in a reorder window (capture time) before they are replayed. The window starts at 250 ms
// and doubles, up to 30 s, whenever an event arrives later than that. An allocation later still
// (a thread that allocated and then went quiet hands its buffer over late) whose block was freed
// meanwhile is matched with that free (orphans_), so what is live at the end stays exact; only
// the peak may be off.
//
// Times are as the file makes them (sums of signed deltas, which wrap rather than overflow).
// held_bytes() estimates what the replay holds (capture_limits.h), so the reader can stop a file
// that would make it hold too much. Not thread-safe: one replay per read.
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "profile_model.h"

namespace rsr::ctl {

struct ReplayEvent {
  int64_t time;
  uint64_t seq;  // file order, for a stable sort
  uint64_t tid;
  uint64_t address;
  uint64_t size;  // ALLOC only
  uint64_t stack;
  bool alloc;
};

struct ReplayTotals {
  uint64_t count = 0, bytes = 0;
  void add(uint64_t size) {
    ++count;
    bytes += size;
  }
};

// What one stack id allocated, in each view.
struct StackTotals {
  ReplayTotals all, live, temporary;
};

class Replay {
 public:
  explicit Replay(ProfileModel& model);

  void push(const ReplayEvent& e);
  // Replays whatever the window still holds.
  void finish();
  void name_thread(uint64_t tid, std::string_view name);

  // Fills the model's live totals, size histogram and threads for `view`, and a warning when
  // events came later than the window.
  void fill(ProfileView view);

  const std::unordered_map<uint64_t, StackTotals>& stacks() const { return stacks_; }
  int64_t last_time() const { return last_time_; }
  // Estimated bytes held now (capture_limits.h).
  uint64_t held_bytes() const;

 private:
  struct Later {
    bool operator()(const ReplayEvent& a, const ReplayEvent& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  struct Live {
    uint64_t size;
    uint64_t stack;
    uint64_t tid;
    int64_t time;
  };
  struct ThreadState {
    std::string name;
    ReplayTotals all, temporary;
    uint64_t pending = 0;  // address of the thread's latest allocation while it may be temporary
    bool has_pending = false;
  };

  void pop();
  void on_alloc(const ReplayEvent& e);
  void on_free(const ReplayEvent& e);
  void forget(const Live& block);

  ProfileModel& model_;
  std::priority_queue<ReplayEvent, std::vector<ReplayEvent>, Later> queue_;
  int64_t window_;
  int64_t newest_ = INT64_MIN, emitted_time_ = INT64_MIN, last_time_ = 0;
  uint64_t late_ = 0;
  std::unordered_map<uint64_t, int64_t> orphans_;  // frees of blocks not (yet) seen allocated
  std::unordered_map<uint64_t, Live> live_;
  uint64_t live_bytes_ = 0;
  std::unordered_map<uint64_t, StackTotals> stacks_;
  std::unordered_map<uint64_t, ThreadState> threads_;
  uint64_t name_bytes_ = 0;
  std::vector<SizeBucket> hist_all_, hist_temp_;
};

}  // namespace rsr::ctl
