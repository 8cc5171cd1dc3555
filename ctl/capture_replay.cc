#include "capture_replay.h"

#include <algorithm>
#include <cstdlib>

#include "capture_limits.h"
#include "capture_reader.h"

namespace rsr::ctl {
namespace {

constexpr int kBuckets = 65;
// Free span of a block still live at the end, while kept in Replay::uses_.
constexpr uint32_t kLiveSpan = 0xffff;
// Kept uses beyond which their spans are made twice as long (the page's data stays a few MB).
constexpr size_t kMaxUses = 200000;
// Timeline spans (at most 512 of them) halved this often are one span.
constexpr uint32_t kMaxUseShift = 9;

// A kept use's key, second half: thread << 32 | alloc span << 16 | free span.
uint64_t use_key(uint64_t thread, uint64_t alloc_span, uint64_t free_span) {
  return thread << 32 | alloc_span << 16 | free_span;
}
uint32_t use_thread(uint64_t key) { return static_cast<uint32_t>(key >> 32); }
uint32_t use_alloc_span(uint64_t key) { return static_cast<uint32_t>(key >> 16 & 0xffff); }
uint32_t use_free_span(uint64_t key) { return static_cast<uint32_t>(key & 0xffff); }

}  // namespace

void* Replay::mem_alloc(size_t n) { return std::malloc(n); }
void Replay::mem_release(void* p) { std::free(p); }

Replay::Replay(ProfileModel& model)
    : model_(model), live_(Memory{mem_alloc, mem_release}), uses_(Memory{mem_alloc, mem_release}) {
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
    ++doublings_;
    if (keep_uses_) halve_uses();
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
  const uint32_t born = static_cast<uint32_t>(std::min<uint64_t>(now_ / span_units_, 0xffff)) | doublings_ << 16;
  if (!live_.insert(key, Live{thread_, born})) throw std::bad_alloc();
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
  bool temporary = false;
  if (t.pending == key) {
    if (block.thread == thread_) {
      temporary = true;
      ++in.temporary;
      count(hist_temp_, in.size);
      t.temporary.add(in.size);
    }
    t.pending = Key{};
  }
  if (keep_uses_ && (temporary || uses_view_ != ProfileView::kTemporary))
    add_use(in.stack, block.thread, block.born, static_cast<uint32_t>(std::min<uint64_t>(now_ / span_units_, 0xfffe)), in.size);
  return true;
}

void Replay::keep_uses(ProfileView view) {
  keep_uses_ = true;
  uses_view_ = view;
}

void Replay::add_use(uint64_t stack, uint32_t thread, uint32_t born, uint32_t free_span, uint64_t size) {
  const uint32_t alloc_span = (born & 0xffff) >> std::min<uint32_t>(doublings_ - (born >> 16) + use_shift_, 31);
  if (free_span != kLiveSpan) free_span >>= use_shift_;
  const Key key{stack + 1, use_key(thread, alloc_span, free_span)};
  UseTotals* u = uses_.insert(key, UseTotals{0, 0});
  if (!u) throw std::bad_alloc();
  ++u->count;
  u->bytes += size;
  // Longer spans until one span covers the capture. Past that the uses differ by stack and
  // thread alone, and when there are still too many of them none are kept (the page then shows
  // the whole capture, without time ranges or threads).
  if (uses_.size() > kMaxUses) {
    if (use_shift_ < kMaxUseShift) {
      ++use_shift_;
      halve_uses();
    } else {
      keep_uses_ = false;
      uses_dropped_ = true;
      uses_.clear();
    }
  }
}

void Replay::halve_uses() {
  std::vector<std::pair<Key, UseTotals>> kept;
  kept.reserve(uses_.size());
  uses_.for_each([&](const Key& k, const UseTotals& u) { kept.emplace_back(k, u); });
  uses_.clear();
  for (auto& [k, u] : kept) {
    const uint32_t free_span = use_free_span(k.second);
    const Key halved{k.first, use_key(use_thread(k.second), use_alloc_span(k.second) >> 1,
                                      free_span == kLiveSpan ? kLiveSpan : free_span >> 1)};
    UseTotals* to = uses_.insert(halved, UseTotals{0, 0});
    if (!to) throw std::bad_alloc();
    to->count += u.count;
    to->bytes += u.bytes;
  }
}

std::vector<ReplayUse> Replay::uses() const {
  // Replay thread index -> index in the model's threads (sorted by tid).
  std::unordered_map<uint64_t, uint32_t> by_tid;
  for (size_t i = 0; i < model_.threads.size(); ++i) by_tid[model_.threads[i].tid] = static_cast<uint32_t>(i);
  std::vector<ReplayUse> out;
  out.reserve(uses_.size());
  uses_.for_each([&](const Key& k, const UseTotals& u) {
    const auto t = by_tid.find(threads_[use_thread(k.second)].tid);
    const uint32_t free_span = use_free_span(k.second);
    out.push_back(ReplayUse{k.first - 1, t == by_tid.end() ? 0 : t->second, use_alloc_span(k.second),
                            free_span == kLiveSpan ? StackUse::kStillLive : free_span, u.count, u.bytes});
  });
  return out;
}

double Replay::use_step_s() const { return model_.timeline_step_s * static_cast<double>(uint64_t{1} << use_shift_); }

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
  return live_.capacity() * sizeof(FlatMap<Key, Live, KeyPairHash>::Slot) +
         uses_.capacity() * sizeof(FlatMap<Key, UseTotals, KeyPairHash>::Slot) + infos_.capacity() * sizeof(Info) +
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
  if (keep_uses_ && uses_view_ != ProfileView::kTemporary) {
    std::vector<std::pair<Key, Live>> live;  // add_use may halve the uses, not touch live_
    live_.for_each([&](const Key& key, const Live& block) { live.emplace_back(key, block); });
    for (const auto& [key, block] : live) {
      const Info& in = infos_[key.first - 1];
      add_use(in.stack, block.thread, block.born, kLiveSpan, in.size);
    }
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
