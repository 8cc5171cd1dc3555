#include "capture_format.h"

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

void EventEncoder::advance(RecordWriter& w, int64_t t_ns, uint64_t tid) {
  const uint64_t tick = t_ns > 0 ? static_cast<uint64_t>(t_ns) / unit_ns_ : 0;
  if (tick > tick_) {
    const uint64_t delta = tick - tick_;
    w.fields(Record::kTick, &delta, 1);
    tick_ = tick;
  }
  if (tid != tid_) {
    w.fields(Record::kSwitch, &tid, 1);
    tid_ = tid;
  }
}

uint64_t EventEncoder::pair(RecordWriter& w, uint64_t size, uint64_t stack) {
  bool fresh = false;
  uint64_t* id = infos_.insert(KeyPair{size, stack + 1}, pairs_ + 1, &fresh);
  if (!id) return 0;
  if (!fresh) return *id;
  if (pairs_ + 1 >= counts_cap_) {
    const uint64_t cap = counts_cap_ ? counts_cap_ * 2 : 1024;
    auto* grown = static_cast<uint64_t*>(mem_.alloc(cap * sizeof(uint64_t)));
    if (!grown) {
      infos_.erase(KeyPair{size, stack + 1});
      return 0;
    }
    std::memset(grown, 0, cap * sizeof(uint64_t));
    if (counts_) std::memcpy(grown, counts_, counts_cap_ * sizeof(uint64_t));
    mem_.release(counts_);
    counts_ = grown;
    counts_cap_ = cap;
  }
  const uint64_t info[2] = {size, stack};
  w.fields(Record::kInfo, info, 2);
  return ++pairs_;
}

void EventEncoder::write_free(RecordWriter& w, const Block& b) {
  const uint64_t values[2] = {b.pair, counts_[b.pair] - b.number + 1};
  if (values[1] == 1) w.fields(Record::kFreeLatest, values, 1);
  else w.fields(Record::kFree, values, 2);
  ++frees_;
}

bool EventEncoder::alloc(RecordWriter& w, int64_t t_ns, uint64_t tid, uint64_t address, uint64_t size,
                         uint64_t stack) {
  if (w.room() < kMaxEventBytes) return false;
  advance(w, t_ns, tid);
  if (Block* old = blocks_.find(address)) {  // its free was lost (events dropped): it is gone, say so
    write_free(w, *old);
    blocks_.erase(address);
  }
  const uint64_t id = pair(w, size, stack);
  if (id == 0) {  // no memory for the pair: an INFO and ALLOC of their own, never freed
    const uint64_t info[2] = {size, stack};
    w.fields(Record::kInfo, info, 2);
    const uint64_t own = ++pairs_;
    w.fields(Record::kAlloc, &own, 1);
    ++allocs_;
    ++untracked_;
    return true;
  }
  w.fields(Record::kAlloc, &id, 1);
  ++allocs_;
  const uint64_t number = ++counts_[id];
  if (!blocks_.insert(address, Block{id, number})) ++untracked_;
  return true;
}

bool EventEncoder::free(RecordWriter& w, int64_t t_ns, uint64_t tid, uint64_t address) {
  if (w.room() < kMaxEventBytes) return false;
  Block b{};
  if (!blocks_.erase(address, &b)) return true;
  advance(w, t_ns, tid);
  write_free(w, b);
  return true;
}

bool EventEncoder::counters(RecordWriter& w, int64_t t_ns, uint64_t heap_bytes, uint64_t rss_bytes) {
  if (w.room() < kMaxEventBytes) return false;
  advance(w, t_ns, tid_);
  const uint64_t values[2] = {heap_bytes, rss_bytes};
  w.fields(Record::kCounters, values, 2);
  return true;
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
