#include "capture_replay.h"

#include <algorithm>
#include <cstdlib>

#include "capture_limits.h"
#include "capture_reader.h"

namespace rsr::ctl {
namespace {

constexpr int kBuckets = 65;

}  // namespace

void* Replay::mem_alloc(size_t n) { return std::malloc(n); }
void Replay::mem_release(void* p) { std::free(p); }

Replay::Replay(ProfileModel& model) : model_(model), live_(Memory{mem_alloc, mem_release}) {
  for (auto* h : {&hist_all_, &hist_temp_}) h->assign(kBuckets, SizeBucket{});
  threads_.emplace_back();  // events before any SWITCH: thread 0
  thread_at_[0] = 0;
}

void Replay::times(uint64_t units, uint64_t count) {
  times_end_ += units;  // wraps rather than overflows: a hostile file's deltas may add up to anything
  if (count > 0) times_.emplace_back(times_end_, count);
}

void Replay::next_event_time() {
  if (left_ == 0 && !times_.empty()) {  // with none left, later records keep the last time
    now_ = times_.front().first;
    left_ = times_.front().second;
    times_.pop_front();
    span(now_);
  }
  if (left_ > 0) --left_;
}

TimePoint& Replay::span(uint64_t time) {
  uint64_t at = time / span_units_;
  while (at >= ProfileModel::kTimelinePoints) {
    // Twice as long spans: each keeps the higher readings of the two it replaces.
    const size_t n = spans_.size();
    for (size_t i = 0; i < (n + 1) / 2; ++i) {
      TimePoint p = spans_[2 * i];
      if (2 * i + 1 < n) {
        const TimePoint& q = spans_[2 * i + 1];
        p.live_bytes = std::max(p.live_bytes, q.live_bytes);
        p.heap_bytes = std::max(p.heap_bytes, q.heap_bytes);
        p.rss_bytes = std::max(p.rss_bytes, q.rss_bytes);
      }
      spans_[i] = p;
    }
    spans_.resize((n + 1) / 2);
    span_units_ *= 2;
    at = time / span_units_;
  }
  // Spans with no event hold what was live when they began.
  while (spans_.size() <= at) spans_.push_back(TimePoint{0, live_bytes_, 0, 0});
  return spans_[at];
}

void Replay::count(std::vector<SizeBucket>& hist, uint64_t size) {
  SizeBucket& b = hist[size_bucket(size)];
  ++b.count;
  b.bytes += size;
}

uint32_t Replay::thread_index(uint64_t tid) {
  auto [it, fresh] = thread_at_.try_emplace(tid, static_cast<uint32_t>(threads_.size()));
  if (fresh) {
    threads_.emplace_back();
    threads_.back().tid = tid;
  }
  return it->second;
}

void Replay::switch_thread(uint64_t tid) { thread_ = thread_index(tid); }

void Replay::name_thread(uint64_t tid, std::string_view name) {
  std::string& held = threads_[thread_index(tid)].name;
  name_bytes_ = name_bytes_ - held.size() + name.size();
  held = name;
}

bool Replay::info(uint64_t size, uint64_t stack) {
  infos_.push_back(Info{size, stack});
  return true;
}

bool Replay::alloc(uint64_t info) {
  if (info == 0 || info > infos_.size()) return false;
  next_event_time();
  Info& in = infos_[info - 1];
  const Key key{info, ++in.all};
  if (!live_.insert(key, Live{thread_, 0})) throw std::bad_alloc();
  ++model_.allocations;
  model_.allocated_bytes += in.size;
  ++in.live;
  live_bytes_ += in.size;
  if (live_bytes_ > model_.peak_bytes) {
    model_.peak_bytes = live_bytes_;
    model_.peak_time_s = static_cast<double>(now_ * unit_ns_) / 1e9;
  }
  TimePoint& at = spans_[std::min<uint64_t>(now_ / span_units_, spans_.size() - 1)];
  at.live_bytes = std::max(at.live_bytes, live_bytes_);
  count(hist_all_, in.size);
  ThreadState& t = threads_[thread_];
  t.all.add(in.size);
  t.pending = key;
  return true;
}

bool Replay::free(uint64_t info, uint64_t distance) {
  if (info == 0 || info > infos_.size()) return false;
  Info& in = infos_[info - 1];
  if (distance == 0 || distance > in.all) return false;
  const Key key{info, in.all + 1 - distance};
  Live block;
  if (!live_.erase(key, &block)) return false;
  next_event_time();
  ++model_.frees;
  model_.freed_bytes += in.size;
  live_bytes_ -= in.size;
  --in.live;
  ThreadState& t = threads_[thread_];
  if (t.pending == key) {
    if (block.thread == thread_) {
      ++in.temporary;
      count(hist_temp_, in.size);
      t.temporary.add(in.size);
    }
    t.pending = Key{};
  }
  return true;
}

void Replay::counters(uint64_t at_units, uint64_t heap_bytes, uint64_t rss_bytes) {
  model_.process_peak_heap_bytes = std::max(model_.process_peak_heap_bytes, heap_bytes);
  model_.process_peak_rss_bytes = std::max(model_.process_peak_rss_bytes, rss_bytes);
  TimePoint& at = span(at_units);
  at.heap_bytes = std::max(at.heap_bytes, heap_bytes);
  at.rss_bytes = std::max(at.rss_bytes, rss_bytes);
}

std::unordered_map<uint64_t, StackTotals> Replay::stacks() const {
  std::unordered_map<uint64_t, StackTotals> out;
  for (const Info& in : infos_) {
    if (in.all == 0) continue;
    StackTotals& s = out[in.stack];
    s.all.add(in.size, in.all);
    s.live.add(in.size, in.live);
    s.temporary.add(in.size, in.temporary);
  }
  return out;
}

uint64_t Replay::held_bytes() const {
  namespace lim = capture_limits;
  return live_.capacity() * sizeof(FlatMap<Key, Live, KeyPairHash>::Slot) + infos_.capacity() * sizeof(Info) +
         times_.size() * 2 * sizeof(uint64_t) +
         threads_.size() * lim::kThreadCost + name_bytes_;
}

void Replay::fill(ProfileView view) {
  model_.timeline_step_s = static_cast<double>(span_units_ * unit_ns_) / 1e9;
  model_.timeline = spans_;
  for (size_t i = 0; i < model_.timeline.size(); ++i) model_.timeline[i].t_s = static_cast<double>(i) * model_.timeline_step_s;
  model_.live_blocks_at_end = live_.size();
  model_.live_bytes_at_end = live_bytes_;
  std::vector<SizeBucket> hist_live(kBuckets);
  std::vector<ReplayTotals> live_by_thread(threads_.size());
  if (view == ProfileView::kLeaks) {
    live_.for_each([&](const Key& key, const Live& block) {
      const uint64_t size = infos_[key.first - 1].size;
      count(hist_live, size);
      live_by_thread[block.thread].add(size);
    });
  }
  model_.size_histogram = view == ProfileView::kAll         ? hist_all_
                          : view == ProfileView::kTemporary ? hist_temp_
                                                            : hist_live;
  for (size_t i = 0; i < threads_.size(); ++i) {
    const ThreadState& t = threads_[i];
    const ReplayTotals& v = view == ProfileView::kAll         ? t.all
                            : view == ProfileView::kTemporary ? t.temporary
                                                              : live_by_thread[i];
    if (i == 0 && t.all.count == 0) continue;  // no event came before the first SWITCH
    ProfileThread pt;
    pt.tid = t.tid;
    pt.name = t.name;
    pt.allocations = v.count;
    pt.bytes = v.bytes;
    model_.threads.push_back(std::move(pt));
  }
  std::sort(model_.threads.begin(), model_.threads.end(),
            [](const ProfileThread& a, const ProfileThread& b) { return a.tid < b.tid; });
}

}  // namespace rsr::ctl
