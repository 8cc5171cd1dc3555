#include "capture_reader.h"

#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "capture_format.h"
#include "capture_limits.h"
#include "capture_replay.h"
#include "client.h"
#include "commands.h"
#include "errors.h"
#include "format.h"
#include "json_limits.h"
#include "regular_file.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

namespace cap = rsr::capture;
namespace lim = capture_limits;

constexpr size_t kReadChunk = 1 << 20;
// Decodes records and feeds the replay; keeps the header/trailer fields, stacks and modules.
// Stops (damage()) at a record that declares more than a record may hold, or once what is held
// would pass the memory budget (capture_limits.h).
class Decoder {
 public:
  Decoder(ProfileModel& model, Replay& replay, uint64_t memory_budget)
      : model_(model), replay_(replay), memory_budget_(memory_budget) {}

  // Decodes every complete record at the front of `data`; returns the bytes consumed.
  size_t feed(const uint8_t* data, size_t n) {
    cap::RecordReader reader(data, n);
    cap::Record type;
    cap::Fields fields(nullptr, 0);
    while (damage_.empty() && reader.next(&type, &fields)) {
      if (!record(type, fields)) ++malformed_;
      if (held_bytes() > memory_budget_)
        damage_ = "stopped reading: holding what the file describes would take more than " +
                  human_bytes(static_cast<double>(memory_budget_)) +
                  ", the most rsrmemctl allows for a file of this size (64 MiB + 256 times its "
                  "size); the file is damaged or hostile";
    }
    const size_t used = reader.consumed(data);
    if (damage_.empty()) check_pending(data + used, n - used);
    return used;
  }

  // Why reading must stop; "" while it may go on.
  const std::string& damage() const { return damage_; }
  // Estimated bytes held by what was read (capture_limits.h).
  uint64_t held_bytes() const {
    return replay_.held_bytes() + stacks_.size() * lim::kStackCost + frames_ * lim::kFrameCost +
           model_.modules.size() * lim::kModuleCost + module_bytes_;
  }
  bool saw_header() const { return saw_header_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t long_stacks() const { return long_stacks_; }
  uint64_t ignored_modules() const { return ignored_modules_; }
  std::unordered_map<uint64_t, std::vector<uint64_t>>& stacks() { return stacks_; }
  double end_time() const { return end_time_; }

 private:
  // The record that did not complete: its declared length must fit a record.
  void check_pending(const uint8_t* p, size_t n) {
    if (n < 2) return;
    cap::Fields header(p + 1, n - 1);
    uint64_t declared = 0;
    if (!header.v(&declared)) {
      if (n > 11) damage_ = "a record's length is not a number (the file is damaged)";
      return;
    }
    if (declared > lim::kMaxRecordBytes)
      damage_ = "a record declares " + human_bytes(static_cast<double>(declared)) +
                ", more than the " + human_bytes(static_cast<double>(lim::kMaxRecordBytes)) +
                " a record may hold (the file is damaged)";
  }

  bool record(cap::Record type, cap::Fields& f) {
    switch (type) {
      case cap::Record::kHeader:
      case cap::Record::kEnd: {
        std::string_view text;
        if (!f.str(&text) || !json_limits_problem(text, kMaxJsonDepth, kMaxJsonValues).empty())
          return false;
        Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) return false;
        if (type == cap::Record::kHeader)
          header(j);
        else
          end(j);
        return true;
      }
      case cap::Record::kModule:
        return module(f);
      case cap::Record::kStack: {
        uint64_t id = 0, n = 0;
        if (!f.v(&id) || !f.v(&n)) return false;
        std::vector<uint64_t> frames;
        frames.reserve(std::min<uint64_t>(n, lim::kMaxStackFrames));
        for (uint64_t i = 0; i < n; ++i) {  // n is bounded by the record: a frame is a byte at least
          uint64_t a = 0;
          if (!f.v(&a)) return false;
          if (frames.size() < lim::kMaxStackFrames) frames.push_back(a);
        }
        if (n > lim::kMaxStackFrames) ++long_stacks_;
        std::vector<uint64_t>& held = stacks_[id];
        frames_ = frames_ - held.size() + frames.size();
        held = std::move(frames);
        return true;
      }
      case cap::Record::kThread: {
        uint64_t tid = 0;
        std::string_view name;
        if (!f.v(&tid) || !f.str(&name)) return false;
        replay_.name_thread(tid, name.substr(0, lim::kMaxNameBytes));
        return true;
      }
      case cap::Record::kTimes: {
        uint64_t n = 0;
        if (!f.v(&n)) return false;
        for (uint64_t i = 0; i < n; ++i) {  // n is bounded by the record: an entry is two bytes at least
          uint64_t units = 0, count = 0;
          if (!f.v(&units) || !f.v(&count)) return false;
          replay_.times(units, count);
        }
        return true;
      }
      case cap::Record::kSwitch: {
        uint64_t tid = 0;
        if (!f.v(&tid)) return false;
        replay_.switch_thread(tid);
        return true;
      }
      case cap::Record::kInfo: {
        uint64_t size = 0, stack = 0;
        return f.v(&size) && f.v(&stack) && replay_.info(size, stack);
      }
      case cap::Record::kAlloc: {
        uint64_t info = 0;
        return f.v(&info) && replay_.alloc(info);
      }
      case cap::Record::kFree: {
        uint64_t info = 0, distance = 0;
        return f.v(&info) && f.v(&distance) && replay_.free(info, distance);
      }
      case cap::Record::kFreeLatest: {
        uint64_t info = 0;
        return f.v(&info) && replay_.free(info, 1);
      }
      case cap::Record::kCounters: {
        uint64_t at = 0, heap = 0, rss = 0;
        if (!f.v(&at) || !f.v(&heap) || !f.v(&rss)) return false;
        replay_.counters(at, heap, rss);
        return true;
      }
    }
    return true;  // a record type this reader does not know: skipped
  }

  // A MODULE record; the same module recorded again (a library loaded and unloaded over and
  // over) is kept once, and at most kMaxModules are kept.
  bool module(cap::Fields& f) {
    ModuleInfo m;
    std::string_view path, build_id;
    if (!f.v(&m.start) || !f.v(&m.end) || !f.v(&m.base) || !f.str(&path) || !f.str(&build_id))
      return false;
    if (path.size() > lim::kMaxPathBytes || build_id.size() > lim::kMaxPathBytes) return false;
    m.path = path;
    m.build_id = build_id;
    std::string key = std::to_string(m.start) + ' ' + std::to_string(m.end) + ' ' +
                      std::to_string(m.base) + ' ' + m.build_id + ' ' + m.path;
    if (module_keys_.count(key)) return true;
    if (model_.modules.size() >= lim::kMaxModules) {
      ++ignored_modules_;
      return true;
    }
    module_bytes_ += 2 * (key.size() + m.path.size());
    module_keys_.insert(std::move(key));
    model_.modules.push_back(std::move(m));
    return true;
  }

  void header(const Json& j) {
    saw_header_ = true;
    model_.id = str(j, "id");
    model_.kind = str(j, "kind");
    model_.scope = str(j, "scope");
    model_.service = str(j, "service");
    model_.program = str(j, "program");
    model_.hostname = str(j, "hostname");
    set_allocator_wrappers(str(j, "allocator_wrappers"));
    model_.pid = static_cast<int64_t>(num(j, "pid"));
    model_.start_time = num(j, "start_time");
    model_.requested_duration_s = num(j, "duration_s");
    replay_.set_time_unit(static_cast<uint64_t>(num(j, "time_unit_ns")));
  }

  void end(const Json& j) {
    model_.complete = true;
    model_.end_reason = str(j, "reason");
    model_.truncated = j.value("truncated", false);
    end_time_ = num(j, "end_time");
    model_.dropped_events = static_cast<uint64_t>(num(j, "dropped_events"));
  }

  // A header or end record is a small flat object.
  static constexpr size_t kMaxJsonDepth = 16;
  static constexpr size_t kMaxJsonValues = 100000;

  ProfileModel& model_;
  Replay& replay_;
  const uint64_t memory_budget_;
  std::string damage_;
  bool saw_header_ = false;
  uint64_t malformed_ = 0, long_stacks_ = 0, ignored_modules_ = 0;
  double end_time_ = 0;
  std::unordered_map<uint64_t, std::vector<uint64_t>> stacks_;
  uint64_t frames_ = 0;  // held in stacks_
  std::unordered_set<std::string> module_keys_;
  uint64_t module_bytes_ = 0;
};

struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// What a report stack takes in memory, its strings and its index entry included (an estimate).
uint64_t stack_bytes(const ProfileStack& s) {
  uint64_t n = sizeof(ProfileStack) + 96;
  for (const ProfileFrame& f : s.frames)
    n += sizeof(ProfileFrame) + sizeof(uint64_t) + f.function.capacity() + f.file.capacity() +
         f.module.capacity();
  return n;
}

// The view's stacks, symbolized, merged where their trimmed frames agree, largest first. The
// largest are symbolized first; once the symbolizer and the stacks hold `allowance` bytes, the
// rest of the view goes into one stack whose frame says so (its totals still count).
void build_stacks(ProfileModel& model, const Replay& replay,
                  const std::unordered_map<uint64_t, std::vector<uint64_t>>& raw,
                  uint64_t allowance, bool with_uses) {
  struct Use {
    uint64_t id;
    ReplayTotals totals;
  };
  std::vector<Use> uses;
  for (const auto& [id, totals] : replay.stacks()) {
    const ReplayTotals& t = model.view == ProfileView::kAll     ? totals.all
                            : model.view == ProfileView::kLeaks ? totals.live
                                                                : totals.temporary;
    // With uses kept, the leaks view needs every stack: a time range shows blocks freed later.
    if (t.count > 0 || (with_uses && model.view == ProfileView::kLeaks)) uses.push_back({id, t});
  }
  std::sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) {
    if (a.totals.bytes != b.totals.bytes) return a.totals.bytes > b.totals.bytes;
    if (a.totals.count != b.totals.count) return a.totals.count > b.totals.count;
    return a.id < b.id;
  });

  Symbolizer symbolizer(model.modules);
  symbolizer.limit_memory(allowance / 2);
  uint64_t model_bytes = 0;
  std::map<std::vector<uint64_t>, size_t> index;  // trimmed addresses -> position in stacks
  std::unordered_map<uint64_t, size_t> position;   // stack id -> position in stacks
  size_t rest_stacks = 0;
  static const std::vector<uint64_t> kNone;
  ReplayTotals rest;  // of the stacks left unsymbolized
  for (const Use& u : uses) {
    model.view_allocations += u.totals.count;
    model.view_bytes += u.totals.bytes;
    if (symbolizer.held_bytes() + model_bytes > allowance) {
      rest.count += u.totals.count;
      rest.bytes += u.totals.bytes;
      ++rest_stacks;
      continue;
    }
    auto it = raw.find(u.id);
    const std::vector<const SymbolizedFrame*> frames =
        trimmed_stack(it == raw.end() ? kNone : it->second, symbolizer);
    std::vector<uint64_t> key;
    for (const SymbolizedFrame* f : frames) key.push_back(f->address);
    auto [pos, fresh] = index.try_emplace(key, model.stacks.size());
    if (fresh) {
      model.stacks.push_back(profile_stack(frames));
      model_bytes += stack_bytes(model.stacks.back());
    }
    ProfileStack& s = model.stacks[pos->second];
    s.bytes += u.totals.bytes;
    s.count += u.totals.count;
    position[u.id] = pos->second;
  }
  if (rest_stacks > 0) {
    ProfileStack s;
    s.frames.push_back({0, "[not symbolized: memory limit]", "", 0, "", false});
    s.user_frame = 0;
    s.bytes = rest.bytes;
    s.count = rest.count;
    model.stacks.push_back(std::move(s));
  }
  if (rest.count > 0) {
    model.warnings.push_back(
        human_count(static_cast<double>(rest.count)) + " allocations (" +
        human_bytes(static_cast<double>(rest.bytes)) +
        ") are shown as one stack, not symbolized: the stacks and names before them took " +
        human_bytes(static_cast<double>(allowance)) +
        ", the most allowed for a file of this size");
  }
  std::vector<size_t> order(model.stacks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const ProfileStack &a = model.stacks[x], &b = model.stacks[y];
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.count != b.count) return a.count > b.count;
    const std::string fa = a.frames.empty() ? "" : a.frames.front().function;
    const std::string fb = b.frames.empty() ? "" : b.frames.front().function;
    return fa < fb;
  });
  std::vector<ProfileStack> sorted;
  std::vector<uint32_t> moved_to(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    moved_to[order[i]] = static_cast<uint32_t>(i);
    sorted.push_back(std::move(model.stacks[order[i]]));
  }
  model.stacks = std::move(sorted);
  if (with_uses && replay.uses_dropped()) {
    model.warnings.push_back("too many distinct (stack, thread, time) combinations for the flamegraph page's time "
                             "ranges and thread filter: the page shows the whole capture");
  } else if (with_uses) {
    // The replay's uses by the model's stacks (several stack ids may have become one): sorted by
    // key, then equal keys summed.
    const uint32_t rest_at = rest_stacks > 0 ? moved_to.back() : 0;
    const auto key = [](const StackUse& u) { return std::tie(u.stack, u.thread, u.alloc_span, u.free_span); };
    for (const ReplayUse& u : replay.uses()) {
      const auto p = position.find(u.stack);
      model.uses.push_back(StackUse{p == position.end() ? rest_at : moved_to[p->second], u.thread, u.alloc_span,
                                    u.free_span, u.count, u.bytes});
    }
    std::sort(model.uses.begin(), model.uses.end(), [&](const StackUse& a, const StackUse& b) { return key(a) < key(b); });
    size_t kept = 0;
    for (size_t i = 0; i < model.uses.size(); ++i) {
      if (kept > 0 && key(model.uses[kept - 1]) == key(model.uses[i])) {
        model.uses[kept - 1].count += model.uses[i].count;
        model.uses[kept - 1].bytes += model.uses[i].bytes;
      } else {
        model.uses[kept++] = model.uses[i];
      }
    }
    model.uses.resize(kept);
    model.use_step_s = replay.use_step_s();
  }
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
  // Regular files only, opened without blocking: a FIFO, a device or a directory named as a
  // capture would otherwise hang the report or never end it.
  OpenedFile file = open_regular_file(path);
  if (!file.fd)
    throw CtlError(kExitNotFound, (file.error ? "cannot open capture " : "cannot read capture ") +
                                      path + ": " + file.why);
  const int fd = file.fd.get();
  const uint64_t total = file.size;

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
  if (options.uses) replay.keep_uses(options.view);
  const uint64_t memory_budget = lim::memory_budget(total);
  Decoder decoder(model, replay, memory_budget);

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) throw CtlError(kExitNegative, "cannot create a zstd decompression context");
  // The library's frames hold at most 256 KiB: a frame asking for a larger window is refused
  // before zstd allocates it.
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, lim::kMaxWindowLog);
  std::vector<uint8_t> out(ZSTD_DStreamOutSize());
  std::vector<uint8_t> records;  // decompressed bytes not yet decoded
  size_t frame_state = 0;        // 0: between frames
  uint64_t decompressed = 0;
  const uint64_t decompressed_budget = lim::decompressed_budget(total);
  std::string damage;
  auto drain = [&] {
    const size_t used = decoder.feed(records.data(), records.size());
    records.erase(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(used));
    if (damage.empty()) damage = decoder.damage();
  };

  while (damage.empty()) {
    const size_t got = read_some(in.data(), in.size());
    if (options.progress) options.progress(done, total);
    if (got == 0) break;
    ZSTD_inBuffer input{in.data(), got, 0};
    while (damage.empty() && input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      const size_t r = ZSTD_decompressStream(dctx.get(), &output, &input);
      records.insert(records.end(), out.data(), out.data() + output.pos);
      decompressed += output.pos;
      if (ZSTD_isError(r)) {
        damage = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
                     ? "a compressed frame asks for a window of more than " +
                           human_bytes(static_cast<double>(uint64_t{1} << lim::kMaxWindowLog)) +
                           " (the library writes frames of 256 KiB at most); the file is damaged "
                           "or hostile"
                     : std::string("the compressed data is corrupt (") + ZSTD_getErrorName(r) + ")";
        break;
      }
      frame_state = r;
      if (records.size() >= kReadChunk) drain();
      if (damage.empty() && decompressed > decompressed_budget)
        damage = "stopped reading after " + human_bytes(static_cast<double>(decompressed)) +
                 " decompressed from a file of " + human_bytes(static_cast<double>(total)) +
                 ", the most rsrmemctl decompresses for a file of this size (32 MiB + 64 times "
                 "its size; real captures compress 2 to 10 times); the file is damaged or hostile";
    }
    drain();
  }
  if (damage.empty() && frame_state != 0)
    damage = "the file ends inside a compressed frame (cut short)";
  drain();
  if (damage.empty() && !records.empty()) damage = "the file ends inside a record (cut short)";

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
  if (decoder.long_stacks() > 0)
    model.warnings.push_back(human_count(static_cast<double>(decoder.long_stacks())) +
                             " stacks had more than " + std::to_string(lim::kMaxStackFrames) +
                             " frames; only their innermost " +
                             std::to_string(lim::kMaxStackFrames) + " frames are shown");
  if (decoder.ignored_modules() > 0)
    model.warnings.push_back(human_count(static_cast<double>(decoder.ignored_modules())) +
                             " module records beyond the first " +
                             human_count(static_cast<double>(lim::kMaxModules)) +
                             " distinct ones were ignored; their frames are unresolved");
  if (model.dropped_events > 0)
    model.warnings.push_back(human_count(static_cast<double>(model.dropped_events)) +
                             " events were dropped while capturing (buffers full); totals are "
                             "lower bounds");
  const double to_last_event = static_cast<double>(replay.last_time()) / 1e9;
  model.duration_s = model.complete && decoder.end_time() > model.start_time && model.start_time > 0
                         ? decoder.end_time() - model.start_time
                         : to_last_event;
  replay.fill(model.view);
  // What is left of the budget for the symbolized stacks, and the reports made of them (about
  // as much again).
  const uint64_t held = decoder.held_bytes();
  const uint64_t left = memory_budget > held ? memory_budget - held : 0;
  build_stacks(model, replay, decoder.stacks(), std::max(left / 3, lim::kSymbolizedFloor), options.uses);
  return model;
}

}  // namespace rsr::ctl
