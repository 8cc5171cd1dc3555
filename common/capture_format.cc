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

bool RecordWriter::alloc(int64_t dt_ns, uint64_t tid, uint64_t address, uint64_t size, uint64_t stack_id) {
  const uint64_t dt = zigzag(dt_ns);
  const uint64_t thread = tid == last_tid_ ? 0 : tid;
  const uint64_t delta = zigzag(static_cast<int64_t>(address - last_address_));
  uint8_t* p = begin(Record::kAlloc, varint_size(dt) + varint_size(thread) + varint_size(delta) +
                                         varint_size(size) + varint_size(stack_id));
  if (!p) return false;
  p += put_varint(p, dt);
  p += put_varint(p, thread);
  p += put_varint(p, delta);
  p += put_varint(p, size);
  put_varint(p, stack_id);
  last_tid_ = tid;
  last_address_ = address;
  return true;
}

bool RecordWriter::free(int64_t dt_ns, uint64_t tid, uint64_t address) {
  const uint64_t dt = zigzag(dt_ns);
  const uint64_t thread = tid == last_tid_ ? 0 : tid;
  const uint64_t delta = zigzag(static_cast<int64_t>(address - last_address_));
  uint8_t* p = begin(Record::kFree, varint_size(dt) + varint_size(thread) + varint_size(delta));
  if (!p) return false;
  p += put_varint(p, dt);
  p += put_varint(p, thread);
  put_varint(p, delta);
  last_tid_ = tid;
  last_address_ = address;
  return true;
}

bool EventDecoder::decode(Record type, Fields& f, EventFields* out) {
  uint64_t thread = 0, delta = 0;
  EventFields e;
  if (!f.s(&e.dt_ns) || !f.v(&thread) || !f.v(&delta)) return false;
  if (type == Record::kAlloc && (!f.v(&e.size) || !f.v(&e.stack_id))) return false;
  e.tid = thread != 0 ? thread : last_tid_;
  e.address = last_address_ + static_cast<uint64_t>(unzigzag(delta));
  last_tid_ = e.tid;
  last_address_ = e.address;
  *out = e;
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
