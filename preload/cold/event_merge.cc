#include "event_merge.h"

namespace rsr::cold {

void EventMerge::add(hot::EventBuffer* b) {
  b->next = nullptr;
  if (b->count.load(std::memory_order_acquire) == 0) {
    hot::capture_release(b);
    return;
  }
  ++held_;
  for (Queue& q : queues_) {
    if (q.tid != b->tid) continue;
    if (!q.head) {
      q.head = b;
      q.pos = 0;
      return;
    }
    // One thread's buffers cover disjoint spans of time: keep them ordered by their first event
    // (a buffer collected from the thread can come after a newer one it handed over meanwhile).
    hot::EventBuffer** at = &q.head->next;
    if (b->first_ticks < q.head->first_ticks && q.pos == 0) at = &q.head;
    while (*at && (*at)->first_ticks <= b->first_ticks) at = &(*at)->next;
    b->next = *at;
    *at = b;
    return;
  }
  queues_.push_back(Queue{b->tid, b, 0});
}

void EventMerge::add_list(hot::EventBuffer* list) {
  while (list) {
    hot::EventBuffer* next = list->next;
    add(list);
    list = next;
  }
}

bool EventMerge::ready(const Queue& q, uint64_t limit) const { return q.head && head_ticks(q) < limit; }

bool EventMerge::step(Queue& q) {
  if (++q.pos < q.head->count.load(std::memory_order_relaxed)) return true;
  hot::EventBuffer* done = q.head;
  q.head = done->next;
  q.pos = 0;
  hot::capture_release(done);
  --held_;
  return q.head != nullptr;
}

}  // namespace rsr::cold
