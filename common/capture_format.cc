#include "capture_format.h"

#include <algorithm>
#include <cstring>

namespace rsr::capture {
namespace {

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

}  // namespace

size_t put_varint(uint8_t* out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

void encode_file_header(uint8_t out[kFileHeaderBytes]) {
  std::memcpy(out, kMagic, sizeof kMagic);
  out[8] = static_cast<uint8_t>(kVersion);
  out[9] = static_cast<uint8_t>(kVersion >> 8);
  out[10] = static_cast<uint8_t>(kCompressionZstd);
  out[11] = static_cast<uint8_t>(kCompressionZstd >> 8);
  std::memset(out + 12, 0, 4);
}

bool decode_file_header(const uint8_t* in, size_t n, uint16_t* version, uint16_t* compression) {
  if (n < kFileHeaderBytes || std::memcmp(in, kMagic, sizeof kMagic) != 0) return false;
  *version = static_cast<uint16_t>(in[8] | in[9] << 8);
  *compression = static_cast<uint16_t>(in[10] | in[11] << 8);
  return true;
}

uint8_t* RecordWriter::begin(Record type, size_t payload) {
  const size_t need = 1 + varint_size(payload) + payload;
  if (need > cap_ - size_) return nullptr;
  uint8_t* p = buf_ + size_;
  *p++ = static_cast<uint8_t>(type);
  p += put_varint(p, payload);
  size_ += need;
  return p;
}

bool RecordWriter::json(Record type, std::string_view text) {
  uint8_t* p = begin(type, varint_size(text.size()) + text.size());
  if (!p) return false;
  p += put_varint(p, text.size());
  std::memcpy(p, text.data(), text.size());
  return true;
}

bool RecordWriter::module(uint64_t start, uint64_t end, uint64_t base, std::string_view path,
                          std::string_view build_id) {
  const size_t n = varint_size(start) + varint_size(end) + varint_size(base) + varint_size(path.size()) +
                   path.size() + varint_size(build_id.size()) + build_id.size();
  uint8_t* p = begin(Record::kModule, n);
  if (!p) return false;
  p += put_varint(p, start);
  p += put_varint(p, end);
  p += put_varint(p, base);
  p += put_varint(p, path.size());
  std::memcpy(p, path.data(), path.size());
  p += path.size();
  p += put_varint(p, build_id.size());
  std::memcpy(p, build_id.data(), build_id.size());
  return true;
}

bool RecordWriter::stack(uint64_t id, const uint64_t* frames, size_t n) {
  size_t len = varint_size(id) + varint_size(n);
  for (size_t i = 0; i < n; ++i) len += varint_size(frames[i]);
  uint8_t* p = begin(Record::kStack, len);
  if (!p) return false;
  p += put_varint(p, id);
  p += put_varint(p, n);
  for (size_t i = 0; i < n; ++i) p += put_varint(p, frames[i]);
  return true;
}

bool RecordWriter::thread(uint64_t tid, std::string_view name) {
  uint8_t* p = begin(Record::kThread, varint_size(tid) + varint_size(name.size()) + name.size());
  if (!p) return false;
  p += put_varint(p, tid);
  p += put_varint(p, name.size());
  std::memcpy(p, name.data(), name.size());
  return true;
}

bool RecordWriter::raw(const uint8_t* p, size_t n) {
  if (n > cap_ - size_) return false;
  std::memcpy(buf_ + size_, p, n);
  size_ += n;
  return true;
}

bool RecordWriter::fields(Record type, const uint64_t* values, size_t n) {
  if (is_short(type)) {
    if (n != 1 || 1 + varint_size(values[0]) > cap_ - size_) return false;
    buf_[size_] = static_cast<uint8_t>(type);
    size_ += 1 + put_varint(buf_ + size_ + 1, values[0]);
    return true;
  }
  size_t len = 0;
  for (size_t i = 0; i < n; ++i) len += varint_size(values[i]);
  uint8_t* p = begin(type, len);
  if (!p) return false;
  for (size_t i = 0; i < n; ++i) p += put_varint(p, values[i]);
  return true;
}

namespace {
// Events of one tick held before they are written; a tick with more is written in parts.
constexpr uint32_t kMaxTickEvents = 1 << 16;
}  // namespace

template <class T>
bool EventEncoder::grow(T*& array, uint32_t& cap, uint32_t need) {
  if (need <= cap) return true;
  const uint32_t n = cap ? cap * 2 : 256;
  T* grown = static_cast<T*>(mem_.alloc(size_t{n} * sizeof(T)));
  if (!grown) return false;
  if (array) std::memcpy(static_cast<void*>(grown), array, size_t{cap} * sizeof(T));
  std::memset(static_cast<void*>(grown + cap), 0, size_t{n - cap} * sizeof(T));
  mem_.release(array);
  array = grown;
  cap = n;
  return true;
}

namespace {
constexpr size_t kStageBytes = 16 * 1024;
constexpr uint32_t kMaxTimes = 256;
}  // namespace

// Room in the stage for one more event's records; the stage is written out when short.
bool EventEncoder::room() {
  if (failed_) return false;
  if (!stage_buf_) {
    stage_buf_ = static_cast<uint8_t*>(mem_.alloc(kStageBytes));
    if (!stage_buf_) {
      failed_ = true;
      return false;
    }
    stage_ = RecordWriter(stage_buf_, kStageBytes);
  }
  if (stage_.room() < kMaxEventBytes) {
    note_time();  // the records of the tick so far go out with it
    write_stage();
  }
  return !failed_;
}

void EventEncoder::note_time() {
  const uint64_t written = events() - noted_;
  noted_ = events();
  if (written == 0) return;
  times_[2 * times_n_] = held_tick_ - tick_;
  times_[2 * times_n_ + 1] = written;
  tick_ = held_tick_;
  ++times_n_;
}

// `n` bytes of room in w_, flushing it when short.
bool EventEncoder::reserve(size_t n) {
  if (failed_) return false;
  if (w_.room() >= n) return true;
  if (!flush_(ctx_) || w_.room() < n) failed_ = true;
  return !failed_;
}

void EventEncoder::write_stage() {
  if (times_n_ == 0 && stage_.size() == 0) return;
  // TIMES: the entry count, then the entries.
  uint64_t values[1 + 2 * kMaxTimes];
  values[0] = times_n_;
  std::memcpy(values + 1, times_, sizeof(uint64_t) * 2 * times_n_);
  if (reserve(1 + 5 + 10 * (1 + 2 * size_t{times_n_}))) w_.fields(Record::kTimes, values, 1 + 2 * size_t{times_n_});
  // Whole: a record cut across two flushes would be lost with the second if its write failed.
  if (reserve(stage_.size())) w_.raw(stage_.data(), stage_.size());
  stage_.clear();
  times_n_ = 0;
}

void EventEncoder::start_tick(int64_t t_ns) {
  const uint64_t tick = t_ns > 0 ? static_cast<uint64_t>(t_ns) / unit_ns_ : 0;
  if (tick > held_tick_) {
    close_tick();
    held_tick_ = tick;
  }
  if (tick_n_ >= kMaxTickEvents) close_tick();
}

EventEncoder::Event* EventEncoder::add(uint64_t tid) {
  uint32_t t = threads_n_;
  for (uint32_t i = threads_n_; i-- > 0;) {  // the latest threads first: runs are common
    if (threads_[i].tid == tid) {
      t = i;
      break;
    }
  }
  if (!grow(tick_events_, tick_cap_, tick_n_ + 1)) return nullptr;
  if (t == threads_n_) {
    if (!grow(threads_, threads_cap_, threads_n_ + 1)) return nullptr;
    threads_[threads_n_++] = Thread{tid, tick_n_, tick_n_, tick_n_};
  } else {
    tick_events_[threads_[t].last].next = tick_n_;
    threads_[t].last = tick_n_;
  }
  Event* e = &tick_events_[tick_n_++];
  *e = Event{};
  e->alloc_at = kNone;
  e->next = kNone;
  e->thread = t;
  return e;
}

void EventEncoder::alloc(int64_t t_ns, uint64_t tid, uint64_t address, uint64_t size, uint64_t stack) {
  start_tick(t_ns);
  if (Block* old = blocks_.find(address)) {  // its free was lost (events dropped): it is gone, say so
    const Block b = *old;
    blocks_.erase(address);
    if (Event* f = add(tid)) {
      f->address = address;
      if (b.pair == 0) f->alloc_at = static_cast<uint32_t>(b.number);
      f->a = b.pair;
      f->b = b.number;
    }
  }
  Event* e = add(tid);
  if (!e) {
    ++untracked_;
    return;
  }
  e->alloc = 1;
  e->address = address;
  e->a = size;
  e->b = stack;
  if (!blocks_.insert(address, Block{0, static_cast<uint64_t>(e - tick_events_)})) ++untracked_;
}

void EventEncoder::free(int64_t t_ns, uint64_t tid, uint64_t address) {
  start_tick(t_ns);
  Block b{};
  if (!blocks_.erase(address, &b)) return;
  Event* e = add(tid);
  if (!e) return;
  e->address = address;
  if (b.pair == 0) e->alloc_at = static_cast<uint32_t>(b.number);
  e->a = b.pair;
  e->b = b.number;
}

void EventEncoder::counters(int64_t t_ns, uint64_t heap_bytes, uint64_t rss_bytes) {
  start_tick(t_ns);
  end_tick();
  if (!reserve(kMaxEventBytes)) return;
  const uint64_t values[3] = {held_tick_, heap_bytes, rss_bytes};
  w_.fields(Record::kCounters, values, 3);
}

void EventEncoder::end_tick() {
  close_tick();
  if (stage_buf_) write_stage();
}

void EventEncoder::close_tick() {
  if (tick_n_ == 0) return;
  noted_ = events();
  // The thread written last goes on first: no SWITCH where the previous tick ended.
  for (uint32_t t = 0; t < threads_n_; ++t)
    if (threads_[t].tid == tid_) write_thread(t, kNone);
  for (uint32_t t = 0; t < threads_n_; ++t) write_thread(t, kNone);
  // Blocks of this tick still live: their pair and number are known now.
  for (uint32_t i = 0; i < tick_n_; ++i) {
    const Event& e = tick_events_[i];
    if (!e.alloc) continue;
    Block* b = blocks_.find(e.address);
    if (b && b->pair == 0 && b->number == i) {
      if (e.a != 0) *b = Block{e.a, e.b};
      else blocks_.erase(e.address);  // no pair id: its free cannot be written
    }
  }
  tick_n_ = 0;
  threads_n_ = 0;
  note_time();
  if (times_n_ == kMaxTimes) write_stage();
}

void EventEncoder::write_thread(uint32_t t, uint32_t stop) {
  Thread& th = threads_[t];
  while (th.cursor != kNone) {
    const uint32_t i = th.cursor;
    Event& e = tick_events_[i];
    // A free of a block another thread allocated in this tick: that thread's events up to the
    // ALLOC first (they are earlier, so they never wait for this thread's later ones).
    if (!e.alloc && e.alloc_at != kNone && !tick_events_[e.alloc_at].done)
      write_thread(tick_events_[e.alloc_at].thread, e.alloc_at);
    if (th.tid != tid_ && room()) {
      stage_.fields(Record::kSwitch, &th.tid, 1);
      tid_ = th.tid;
    }
    write_event(e);
    th.cursor = e.next;
    if (i == stop) return;
  }
}

void EventEncoder::write_event(Event& e) {
  e.done = 1;
  const bool ok = room();
  if (e.alloc) {
    const uint64_t size = e.a, stack = e.b;
    const uint64_t id = ok ? pair(size, stack) : 0;
    if (id == 0) {  // no memory for the pair, or nothing is written any more
      if (ok) {
        const uint64_t info[2] = {size, stack};
        stage_.fields(Record::kInfo, info, 2);
        const uint64_t own = ++pairs_;
        stage_.fields(Record::kAlloc, &own, 1);
        ++allocs_;
      }
      ++untracked_;
      e.a = e.b = 0;
      return;
    }
    stage_.fields(Record::kAlloc, &id, 1);
    ++allocs_;
    e.a = id;
    e.b = ++counts_[id];
    return;
  }
  uint64_t pair_id = e.a, number = e.b;
  if (e.alloc_at != kNone) {
    pair_id = tick_events_[e.alloc_at].a;
    number = tick_events_[e.alloc_at].b;
  }
  if (ok && pair_id != 0) write_free(pair_id, number);
}

uint64_t EventEncoder::pair(uint64_t size, uint64_t stack) {
  bool fresh = false;
  uint64_t* id = infos_.insert(KeyPair{size, stack + 1}, pairs_ + 1, &fresh);
  if (!id) return 0;
  if (!fresh) return *id;
  if (!grow(counts_, counts_cap_, static_cast<uint32_t>(pairs_ + 2))) {  // ids from 1
    infos_.erase(KeyPair{size, stack + 1});
    return 0;
  }
  const uint64_t info[2] = {size, stack};
  stage_.fields(Record::kInfo, info, 2);
  return ++pairs_;
}

void EventEncoder::write_free(uint64_t pair_id, uint64_t number) {
  const uint64_t values[2] = {pair_id, counts_[pair_id] - number + 1};
  if (values[1] == 1) stage_.fields(Record::kFreeLatest, values, 1);
  else stage_.fields(Record::kFree, values, 2);
  ++frees_;
}

bool Fields::v(uint64_t* out) {
  if (!get_varint(p_, end_, out)) {
    p_ = end_;
    return false;
  }
  return true;
}

bool Fields::s(int64_t* out) {
  uint64_t u = 0;
  if (!v(&u)) return false;
  *out = unzigzag(u);
  return true;
}

bool Fields::str(std::string_view* out) {
  uint64_t n = 0;
  if (!v(&n)) return false;
  if (n > static_cast<uint64_t>(end_ - p_)) {
    p_ = end_;
    return false;
  }
  *out = std::string_view(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
  p_ += n;
  return true;
}

bool RecordReader::next(Record* type, Fields* payload) {
  if (p_ == end_) return false;
  const uint8_t* p = p_;
  const uint8_t t = *p++;
  if (is_short(static_cast<Record>(t))) {
    const uint8_t* q = p;
    uint64_t v = 0;
    if (!get_varint(q, end_, &v)) {
      // Cut short only when the stream ends inside it; otherwise the varint is malformed (11+
      // bytes) and the record is still one of that many bytes.
      if (end_ - p < 10) {
        truncated_ = true;
        return false;
      }
      q = p + 10;
    }
    *type = static_cast<Record>(t);
    *payload = Fields(p, static_cast<size_t>(q - p));
    p_ = q;
    return true;
  }
  uint64_t n = 0;
  if (!get_varint(p, end_, &n) || n > static_cast<uint64_t>(end_ - p)) {
    truncated_ = true;
    return false;
  }
  *type = static_cast<Record>(t);
  *payload = Fields(p, static_cast<size_t>(n));
  p_ = p + n;
  return true;
}

}  // namespace rsr::capture
