// The capture writer's view of the threads' event buffers: held per thread, in time order, and
// merged into one stream in time order up to a limit (hot/capture.h: "Collecting"). Writer thread
// only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../hot/capture.h"
#include "heap.h"

namespace rsr::cold {

class EventMerge {
 public:
  // A buffer from the threads (handed over or collected): kept until its events are written.
  void add(hot::EventBuffer* b);
  // A list linked through `next`, in any order.
  void add_list(hot::EventBuffer* list);

  // Calls emit(tid, event) for every held event stamped before `limit`, in time order (one
  // thread's events in their order), and gives each buffer it finishes back to the pool.
  template <class F>
  void emit_before(uint64_t limit, F&& emit);

  uint32_t buffers() const { return held_; }

 private:
  struct Queue {
    uint64_t tid;
    hot::EventBuffer* head;  // oldest first, linked through `next`
    uint32_t pos;            // next event of `head`
  };
  uint64_t head_ticks(const Queue& q) const { return q.head->events[q.pos].ticks; }
  bool ready(const Queue& q, uint64_t limit) const;
  // Moves past the queue's current event; false when the queue is empty.
  bool step(Queue& q);

  Vector<Queue> queues_;
  Vector<uint32_t> heap_;
  uint32_t held_ = 0;
};

template <class F>
void EventMerge::emit_before(uint64_t limit, F&& emit) {
  heap_.clear();
  // Earliest head first: std heap functions keep the largest on top, so the order is reversed.
  const auto later = [this](uint32_t a, uint32_t b) { return head_ticks(queues_[a]) > head_ticks(queues_[b]); };
  for (uint32_t i = 0; i < queues_.size(); ++i)
    if (ready(queues_[i], limit)) heap_.push_back(i);
  std::make_heap(heap_.begin(), heap_.end(), later);
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const uint32_t i = heap_.back();
    Queue& q = queues_[i];
    // Runs of one thread go out without touching the heap while they stay earliest.
    const uint64_t next_other = heap_.size() > 1 ? head_ticks(queues_[heap_.front()]) : UINT64_MAX;
    bool more = true;
    do {
      emit(q.tid, q.head->events[q.pos]);
      more = step(q);
    } while (more && ready(q, limit) && head_ticks(q) <= next_other);
    if (more && ready(q, limit)) std::push_heap(heap_.begin(), heap_.end(), later);
    else heap_.pop_back();
  }
  // Queues left empty are dropped.
  size_t kept = 0;
  for (size_t i = 0; i < queues_.size(); ++i)
    if (queues_[i].head) queues_[kept++] = queues_[i];
  queues_.resize(kept);
}

}  // namespace rsr::cold
