#include "capture_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <queue>
#include <unordered_map>

#include "capture_format.h"
#include "client.h"
#include "commands.h"
#include "errors.h"
#include "format.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

namespace cap = rsr::capture;

constexpr size_t kReadChunk = 1 << 20;
constexpr int kBuckets = 65;
// Events are held back this long (capture time) before they are replayed, so batches written
// late by other threads still fall into place; doubled, up to the maximum, whenever an event
// arrives later than that. An allocation later still (a thread that allocated and then went
// quiet hands its buffer over late) whose block was freed meanwhile is matched with that free
// (Replay::orphans_), so what is live at the end stays exact; only the peak may be off.
constexpr int64_t kInitialWindowNs = 250'000'000;
constexpr int64_t kMaxWindowNs = 30'000'000'000;

struct Event {
  int64_t time;
  uint64_t seq;  // file order, for a stable sort
  uint64_t tid;
  uint64_t address;
  uint64_t size;  // ALLOC only
  uint64_t stack;
  bool alloc;
};

struct Later {
  bool operator()(const Event& a, const Event& b) const {
    return a.time != b.time ? a.time > b.time : a.seq > b.seq;
  }
};

struct Live {
  uint64_t size;
  uint64_t stack;
  uint64_t tid;
  int64_t time;
};

struct Totals {
  uint64_t count = 0, bytes = 0;
  void add(uint64_t size) {
    ++count;
    bytes += size;
  }
};

struct StackTotals {
  Totals all, live, temporary;
};

struct ThreadState {
  std::string name;
  Totals all, temporary;
  uint64_t pending = 0;  // address of the thread's latest allocation while it may be temporary
  bool has_pending = false;
};

class Replay {
 public:
  explicit Replay(ProfileModel& model) : model_(model) {
    for (auto* h : {&hist_all_, &hist_temp_}) h->assign(kBuckets, SizeBucket{});
  }

  void push(Event e) {
    if (e.time < emitted_time_) {
      ++late_;
      window_ = std::min(window_ * 2, kMaxWindowNs);
    }
    newest_ = std::max(newest_, e.time);
    queue_.push(e);
    while (!queue_.empty() && queue_.top().time + window_ < newest_) pop();
  }

  void finish() {
    while (!queue_.empty()) pop();
  }

  ThreadState& thread(uint64_t tid) { return threads_[tid]; }

  void fill(ProfileView view) {
    model_.live_blocks_at_end = live_.size();
    model_.live_bytes_at_end = live_bytes_;
    std::vector<SizeBucket> hist_live(kBuckets);
    std::unordered_map<uint64_t, Totals> live_by_thread;
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
      const Totals& v = view == ProfileView::kAll         ? t.all
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

  const std::unordered_map<uint64_t, StackTotals>& stacks() const { return stacks_; }
  int64_t last_time() const { return last_time_; }

 private:
  void pop() {
    const Event e = queue_.top();
    queue_.pop();
    emitted_time_ = std::max(emitted_time_, e.time);
    last_time_ = std::max(last_time_, e.time);
    if (e.alloc)
      on_alloc(e);
    else
      on_free(e);
  }

  static void count(std::vector<SizeBucket>& hist, uint64_t size) {
    SizeBucket& b = hist[size_bucket(size)];
    ++b.count;
    b.bytes += size;
  }

  void on_alloc(const Event& e) {
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

  void on_free(const Event& e) {
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

  void forget(const Live& block) {
    live_bytes_ -= block.size;
    StackTotals& s = stacks_[block.stack];
    --s.live.count;
    s.live.bytes -= block.size;
  }

  ProfileModel& model_;
  std::priority_queue<Event, std::vector<Event>, Later> queue_;
  int64_t window_ = kInitialWindowNs;
  int64_t newest_ = INT64_MIN, emitted_time_ = INT64_MIN, last_time_ = 0;
  uint64_t late_ = 0;
  std::unordered_map<uint64_t, int64_t> orphans_;  // frees of blocks not (yet) seen allocated
  std::unordered_map<uint64_t, Live> live_;
  uint64_t live_bytes_ = 0;
  std::unordered_map<uint64_t, StackTotals> stacks_;
  std::unordered_map<uint64_t, ThreadState> threads_;
  std::vector<SizeBucket> hist_all_, hist_temp_;
};

// Decodes records and feeds the replay; keeps the header/trailer fields, stacks and modules.
class Decoder {
 public:
  Decoder(ProfileModel& model, Replay& replay) : model_(model), replay_(replay) {}

  // Decodes every complete record at the front of `data`; returns the bytes consumed.
  size_t feed(const uint8_t* data, size_t n) {
    cap::RecordReader reader(data, n);
    cap::Record type;
    cap::Fields fields(nullptr, 0);
    while (reader.next(&type, &fields)) {
      if (!record(type, fields)) ++malformed_;
    }
    return reader.consumed(data);
  }

  bool saw_header() const { return saw_header_; }
  uint64_t malformed() const { return malformed_; }
  std::unordered_map<uint64_t, std::vector<uint64_t>>& stacks() { return stacks_; }

 private:
  bool record(cap::Record type, cap::Fields& f) {
    switch (type) {
      case cap::Record::kHeader:
      case cap::Record::kEnd: {
        std::string_view text;
        if (!f.str(&text)) return false;
        Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) return false;
        if (type == cap::Record::kHeader)
          header(j);
        else
          end(j);
        return true;
      }
      case cap::Record::kModule: {
        ModuleInfo m;
        std::string_view path, build_id;
        if (!f.v(&m.start) || !f.v(&m.end) || !f.v(&m.base) || !f.str(&path) ||
            !f.str(&build_id))
          return false;
        m.path = path;
        m.build_id = build_id;
        model_.modules.push_back(std::move(m));
        return true;
      }
      case cap::Record::kStack: {
        uint64_t id = 0, n = 0;
        if (!f.v(&id) || !f.v(&n)) return false;
        std::vector<uint64_t> frames;
        frames.reserve(std::min<uint64_t>(n, 256));
        for (uint64_t i = 0; i < n; ++i) {
          uint64_t a = 0;
          if (!f.v(&a)) return false;
          frames.push_back(a);
        }
        stacks_[id] = std::move(frames);
        return true;
      }
      case cap::Record::kThread: {
        uint64_t tid = 0;
        std::string_view name;
        if (!f.v(&tid) || !f.str(&name)) return false;
        replay_.thread(tid).name = name;
        return true;
      }
      case cap::Record::kAlloc:
      case cap::Record::kFree: {
        cap::EventFields fields;
        if (!events_.decode(type, f, &fields)) return false;
        Event e{};
        e.alloc = type == cap::Record::kAlloc;
        e.tid = fields.tid;
        e.address = fields.address;
        e.size = fields.size;
        e.stack = fields.stack_id;
        time_ += fields.dt_ns;
        e.time = time_;
        e.seq = seq_++;
        replay_.push(e);
        return true;
      }
    }
    return true;  // a record type this reader does not know: skipped
  }

  void header(const Json& j) {
    saw_header_ = true;
    model_.id = str(j, "id");
    model_.kind = str(j, "kind");
    model_.scope = str(j, "scope");
    model_.service = str(j, "service");
    model_.program = str(j, "program");
    model_.hostname = str(j, "hostname");
    model_.pid = static_cast<int64_t>(num(j, "pid"));
    model_.start_time = num(j, "start_time");
    model_.requested_duration_s = num(j, "duration_s");
  }

  void end(const Json& j) {
    model_.complete = true;
    model_.end_reason = str(j, "reason");
    model_.truncated = j.value("truncated", false);
    end_time_ = num(j, "end_time");
    model_.dropped_events = static_cast<uint64_t>(num(j, "dropped_events"));
  }

 public:
  double end_time_ = 0;

 private:
  ProfileModel& model_;
  Replay& replay_;
  bool saw_header_ = false;
  uint64_t malformed_ = 0;
  int64_t time_ = 0;
  cap::EventDecoder events_;  // ALLOC and FREE are relative to the previous one
  uint64_t seq_ = 0;
  std::unordered_map<uint64_t, std::vector<uint64_t>> stacks_;
};

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

bool is_own_frame(const SymbolizedFrame& f) {
  return base_name(f.module).rfind("librsrmem", 0) == 0;
}

// The allocation API itself (malloc, operator new, __libc_malloc, ...), not std:: code that
// calls it: what is left above the caller when the preload hooks the layer below.
bool is_allocator_frame(const SymbolizedFrame& f) {
  if (f.function.empty()) return false;
  const std::string q = qualified_name(f.function);
  return is_runtime_function(q) && q.find("::") == std::string::npos;
}

// The symbolized stack, frames of librsrmem and of the allocation API dropped from the top.
std::vector<const SymbolizedFrame*> trimmed(const std::vector<uint64_t>& addresses,
                                            Symbolizer& symbolizer) {
  std::vector<const SymbolizedFrame*> frames;
  for (uint64_t a : addresses) {
    const SymbolizedFrame& f = symbolizer.symbolize(a);
    if (frames.empty() && f.inlined.empty() && (is_own_frame(f) || is_allocator_frame(f)))
      continue;
    frames.push_back(&f);
  }
  return frames;
}

ProfileStack expand(const std::vector<const SymbolizedFrame*>& frames) {
  ProfileStack stack;
  std::vector<size_t> host_index;  // per symbolized frame: where its inlined calls begin
  for (const SymbolizedFrame* f : frames) {
    host_index.push_back(stack.frames.size());
    for (const InlinedFrame& in : f->inlined)
      stack.frames.push_back({f->address, in.function, in.file, in.line, f->module, true});
    stack.frames.push_back({f->address, f->display_name(), f->file, f->line, f->module, false});
  }
  const UserFrame u = first_user_frame(frames);
  if (!u.found) return stack;
  if (u.fallback) {
    stack.user_frame = 0;
    return stack;
  }
  const size_t begin = host_index[u.index];
  const size_t group = frames[u.index]->inlined.size() + 1;
  stack.user_frame = static_cast<int>(begin + group - 1);
  for (size_t i = begin; i < begin + group; ++i) {
    const ProfileFrame& pf = stack.frames[i];
    if (qualified_name(pf.function) == u.function && pf.line == u.line) {
      stack.user_frame = static_cast<int>(i);
      break;
    }
  }
  return stack;
}

void build_stacks(ProfileModel& model, const Replay& replay,
                  const std::unordered_map<uint64_t, std::vector<uint64_t>>& raw) {
  Symbolizer symbolizer(model.modules);
  std::map<std::vector<uint64_t>, size_t> index;  // trimmed addresses -> position in stacks
  static const std::vector<uint64_t> kNone;
  for (const auto& [id, totals] : replay.stacks()) {
    const Totals& t = model.view == ProfileView::kAll         ? totals.all
                      : model.view == ProfileView::kLeaks     ? totals.live
                                                              : totals.temporary;
    if (t.count == 0) continue;
    auto it = raw.find(id);
    const std::vector<const SymbolizedFrame*> frames =
        trimmed(it == raw.end() ? kNone : it->second, symbolizer);
    std::vector<uint64_t> key;
    for (const SymbolizedFrame* f : frames) key.push_back(f->address);
    auto [pos, fresh] = index.try_emplace(key, model.stacks.size());
    if (fresh) model.stacks.push_back(expand(frames));
    ProfileStack& s = model.stacks[pos->second];
    s.bytes += t.bytes;
    s.count += t.count;
    model.view_allocations += t.count;
    model.view_bytes += t.bytes;
  }
  std::sort(model.stacks.begin(), model.stacks.end(),
            [](const ProfileStack& a, const ProfileStack& b) {
              if (a.bytes != b.bytes) return a.bytes > b.bytes;
              if (a.count != b.count) return a.count > b.count;
              const std::string fa = a.frames.empty() ? "" : a.frames.front().function;
              const std::string fb = b.frames.empty() ? "" : b.frames.front().function;
              return fa < fb;
            });
  for (const std::string& p : symbolizer.problems()) model.warnings.push_back(p);
}

}  // namespace

int size_bucket(uint64_t size) {
  int k = 0;
  while (size) {
    ++k;
    size >>= 1;
  }
  return k;
}

ProfileModel read_capture(const std::string& path, const CaptureReadOptions& options) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw CtlError(kExitNotFound, "cannot open capture " + path + ": " + std::strerror(err));
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw CtlError(kExitNotFound, "cannot read capture " + path + ": not a regular file");
  const uint64_t total = static_cast<uint64_t>(st.st_size);

  std::vector<uint8_t> in(kReadChunk);
  uint64_t done = 0;
  auto read_some = [&](uint8_t* buf, size_t want) -> size_t {
    size_t got = 0;
    while (got < want) {
      const ssize_t n = ::read(fd, buf + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        throw CtlError(kExitNotFound, "cannot read capture " + path + ": " + std::strerror(err));
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    done += got;
    return got;
  };

  uint8_t header[cap::kFileHeaderBytes];
  uint16_t version = 0, compression = 0;
  const size_t header_got = read_some(header, sizeof header);
  if (!cap::decode_file_header(header, header_got, &version, &compression))
    throw CtlError(kExitUsage, path + " is not an rsrmem capture file (no RSRMCAPT header)");
  if (version != cap::kVersion)
    throw CtlError(kExitUsage, path + ": capture format version " + std::to_string(version) +
                                   " is not supported (this rsrmemctl reads version " +
                                   std::to_string(cap::kVersion) + ")");
  if (compression != cap::kCompressionZstd)
    throw CtlError(kExitUsage, path + ": unknown compression " + std::to_string(compression) +
                                   " (this rsrmemctl reads zstd captures)");

  ProfileModel model;
  model.view = options.view;
  Replay replay(model);
  Decoder decoder(model, replay);

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) throw CtlError(kExitNegative, "cannot create a zstd decompression context");
  std::vector<uint8_t> out(ZSTD_DStreamOutSize());
  std::vector<uint8_t> records;  // decompressed bytes not yet decoded
  size_t frame_state = 0;        // 0: between frames
  std::string damage;
  auto drain = [&] {
    const size_t used = decoder.feed(records.data(), records.size());
    records.erase(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(used));
  };

  while (damage.empty()) {
    const size_t got = read_some(in.data(), in.size());
    if (options.progress) options.progress(done, total);
    if (got == 0) break;
    ZSTD_inBuffer input{in.data(), got, 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      const size_t r = ZSTD_decompressStream(dctx.get(), &output, &input);
      records.insert(records.end(), out.data(), out.data() + output.pos);
      if (ZSTD_isError(r)) {
        damage = std::string("the compressed data is corrupt (") + ZSTD_getErrorName(r) + ")";
        break;
      }
      frame_state = r;
      if (records.size() >= kReadChunk) drain();
    }
    drain();
  }
  if (damage.empty() && frame_state != 0)
    damage = "the file ends inside a compressed frame (cut short)";
  drain();
  if (damage.empty() && !records.empty()) damage = "the file ends inside a record (cut short)";
  replay.finish();

  if (!decoder.saw_header())
    throw CtlError(kExitUsage, path + ": no readable capture header record" +
                                   (damage.empty() ? std::string() : "; " + damage));
  if (!damage.empty()) {
    model.file_truncated = true;
    model.truncated = true;
    model.warnings.push_back("capture truncated: " + damage + "; read " +
                             human_count(static_cast<double>(model.allocations)) +
                             " allocations before it");
  } else if (!model.complete) {
    model.truncated = true;
    model.warnings.push_back(
        "capture has no end record (still being written, or the process died); read what is "
        "there");
  }
  if (decoder.malformed() > 0)
    model.warnings.push_back(human_count(static_cast<double>(decoder.malformed())) +
                             " malformed records were skipped");
  if (model.dropped_events > 0)
    model.warnings.push_back(human_count(static_cast<double>(model.dropped_events)) +
                             " events were dropped while capturing (buffers full); totals are "
                             "lower bounds");
  const double to_last_event = static_cast<double>(replay.last_time()) / 1e9;
  model.duration_s = model.complete && decoder.end_time_ > model.start_time && model.start_time > 0
                         ? decoder.end_time_ - model.start_time
                         : to_last_event;
  replay.fill(model.view);
  build_stacks(model, replay, decoder.stacks());
  return model;
}

}  // namespace rsr::ctl
