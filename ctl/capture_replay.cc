#include "capture_replay.h"

#include <algorithm>

#include "capture_limits.h"
#include "capture_reader.h"
#include "format.h"

namespace rsr::ctl {
namespace {

constexpr int kBuckets = 65;
constexpr int64_t kInitialWindowNs = 250'000'000;
constexpr int64_t kMaxWindowNs = 30'000'000'000;

void count(std::vector<SizeBucket>& hist, uint64_t size) {
  SizeBucket& b = hist[size_bucket(size)];
  ++b.count;
  b.bytes += size;
}

}  // namespace

Replay::Replay(ProfileModel& model) : model_(model), window_(kInitialWindowNs) {
  for (auto* h : {&hist_all_, &hist_temp_}) h->assign(kBuckets, SizeBucket{});
}

void Replay::push(const ReplayEvent& e) {
  if (e.time < emitted_time_) {
    ++late_;
    window_ = std::min(window_ * 2, kMaxWindowNs);
  }
  newest_ = std::max(newest_, e.time);
  queue_.push(e);
  // newest_ >= every queued time, so the unsigned difference is exact even across the whole
  // int64 range (a hostile file's times may span it).
  while (!queue_.empty() && static_cast<uint64_t>(newest_) - static_cast<uint64_t>(queue_.top().time) >
                                static_cast<uint64_t>(window_))
    pop();
}

void Replay::finish() {
  while (!queue_.empty()) pop();
}

void Replay::name_thread(uint64_t tid, std::string_view name) {
  std::string& held = threads_[tid].name;
  name_bytes_ = name_bytes_ - held.size() + name.size();
  held = name;
}

uint64_t Replay::held_bytes() const {
  namespace lim = capture_limits;
  return live_.size() * lim::kLiveBlockCost + orphans_.size() * lim::kOrphanCost +
         queue_.size() * lim::kQueuedEventCost + stacks_.size() * lim::kStackCost +
         threads_.size() * lim::kThreadCost + name_bytes_;
}

void Replay::fill(ProfileView view) {
  model_.live_blocks_at_end = live_.size();
  model_.live_bytes_at_end = live_bytes_;
  std::vector<SizeBucket> hist_live(kBuckets);
  std::unordered_map<uint64_t, ReplayTotals> live_by_thread;
  if (view == ProfileView::kLeaks) {
    for (const auto& [address, block] : live_) {
      SizeBucket& b = hist_live[size_bucket(block.size)];
      ++b.count;
      b.bytes += block.size;
      live_by_thread[block.tid].add(block.size);
    }
  }
  model_.size_histogram = view == ProfileView::kAll         ? hist_all_
                          : view == ProfileView::kTemporary ? hist_temp_
                                                            : hist_live;
  for (const auto& [tid, t] : threads_) {
    ProfileThread pt;
    pt.tid = tid;
    pt.name = t.name;
    const ReplayTotals& v = view == ProfileView::kAll         ? t.all
                            : view == ProfileView::kTemporary ? t.temporary
                                                              : live_by_thread[tid];
    pt.allocations = v.count;
    pt.bytes = v.bytes;
    model_.threads.push_back(std::move(pt));
  }
  std::sort(model_.threads.begin(), model_.threads.end(),
            [](const ProfileThread& a, const ProfileThread& b) { return a.tid < b.tid; });
  if (late_ > 0)
    model_.warnings.push_back(human_count(static_cast<double>(late_)) +
                              " events arrived later than the reorder window; the replay "
                              "order of those may be off");
}

void Replay::pop() {
  const ReplayEvent e = queue_.top();
  queue_.pop();
  emitted_time_ = std::max(emitted_time_, e.time);
  last_time_ = std::max(last_time_, e.time);
  if (e.alloc)
    on_alloc(e);
  else
    on_free(e);
}

void Replay::on_alloc(const ReplayEvent& e) {
  ++model_.allocations;
  model_.allocated_bytes += e.size;
  if (auto o = orphans_.find(e.address); o != orphans_.end() && o->second >= e.time) {
    // Replayed late: its free was replayed already.
    orphans_.erase(o);
    ++model_.frees;
    model_.freed_bytes += e.size;
    stacks_[e.stack].all.add(e.size);
    count(hist_all_, e.size);
    threads_[e.tid].all.add(e.size);
    return;
  }
  auto [it, fresh] = live_.try_emplace(e.address, Live{e.size, e.stack, e.tid, e.time});
  if (!fresh) {  // its free was lost (dropped events): the old block is gone
    forget(it->second);
    it->second = Live{e.size, e.stack, e.tid, e.time};
  }
  live_bytes_ += e.size;
  model_.peak_bytes = std::max(model_.peak_bytes, live_bytes_);
  StackTotals& s = stacks_[e.stack];
  s.all.add(e.size);
  s.live.add(e.size);
  count(hist_all_, e.size);
  ThreadState& t = threads_[e.tid];
  t.all.add(e.size);
  t.pending = e.address;
  t.has_pending = true;
}

void Replay::on_free(const ReplayEvent& e) {
  auto it = live_.find(e.address);
  if (it == live_.end()) {  // allocated before the capture started, or replayed late
    orphans_[e.address] = e.time;
    return;
  }
  const Live block = it->second;
  live_.erase(it);
  ++model_.frees;
  model_.freed_bytes += block.size;
  forget(block);
  ThreadState& t = threads_[e.tid];
  if (block.tid == e.tid && t.has_pending && t.pending == e.address) {
    stacks_[block.stack].temporary.add(block.size);
    count(hist_temp_, block.size);
    t.temporary.add(block.size);
  }
  if (t.has_pending && t.pending == e.address) t.has_pending = false;
}

void Replay::forget(const Live& block) {
  live_bytes_ -= block.size;
  StackTotals& s = stacks_[block.stack];
  --s.live.count;
  s.live.bytes -= block.size;
}

}  // namespace rsr::ctl
