// The capture file's encoding (common/capture.md): the file header, varints and records. No
// allocation and no exceptions, so the preload's writer thread uses it as rsrmemctl's reader does.
// Compression (zstd frames around the record stream) is the caller's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rsr::capture {

inline constexpr char kMagic[8] = {'R', 'S', 'R', 'M', 'C', 'A', 'P', 'T'};
inline constexpr uint16_t kVersion = 1;
inline constexpr uint16_t kCompressionZstd = 1;
inline constexpr size_t kFileHeaderBytes = 16;

enum class Record : uint8_t {
  kHeader = 1,
  kModule = 2,
  kStack = 3,
  kThread = 4,
  kAlloc = 5,
  kFree = 6,
  kEnd = 7,
};

// The largest encoded size of an ALLOC or FREE record, and of a STACK record of `frames` frames.
inline constexpr size_t kMaxEventBytes = 2 + 5 * 10;
constexpr size_t max_stack_bytes(size_t frames) { return 1 + 5 + 10 + 10 + 10 * frames; }

void encode_file_header(uint8_t out[kFileHeaderBytes]);
// False when `in` is not a capture header; version and compression are returned as found.
bool decode_file_header(const uint8_t* in, size_t n, uint16_t* version, uint16_t* compression);

// Appends records to a caller-owned buffer. Each append returns false, and leaves the buffer as
// it was, when the record does not fit. ALLOC and FREE records are encoded against the previous
// event appended (its thread and address, see capture.md), across clear(): one writer writes one
// record stream.
class RecordWriter {
 public:
  RecordWriter(uint8_t* buf, size_t capacity) : buf_(buf), cap_(capacity) {}

  bool json(Record type, std::string_view text);  // HEADER or END
  bool module(uint64_t start, uint64_t end, uint64_t base, std::string_view path, std::string_view build_id);
  bool stack(uint64_t id, const uint64_t* frames, size_t n);
  bool thread(uint64_t tid, std::string_view name);
  bool alloc(int64_t dt_ns, uint64_t tid, uint64_t address, uint64_t size, uint64_t stack_id);
  bool free(int64_t dt_ns, uint64_t tid, uint64_t address);

  const uint8_t* data() const { return buf_; }
  size_t size() const { return size_; }
  size_t room() const { return cap_ - size_; }
  void clear() { size_ = 0; }

 private:
  // Writes the type, a payload length of `payload` bytes, and returns where the payload goes, or
  // nullptr when it does not fit.
  uint8_t* begin(Record type, size_t payload);

  uint8_t* buf_;
  size_t cap_;
  size_t size_ = 0;
  uint64_t last_tid_ = 0, last_address_ = 0;
};

// Reads the fields of one payload in order. Every read returns false, and reads nothing more,
// once the payload is exhausted or malformed.
class Fields {
 public:
  Fields(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool v(uint64_t* out);
  bool s(int64_t* out);
  bool str(std::string_view* out);
  bool at_end() const { return p_ == end_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// An ALLOC or FREE record's fields, with its thread and address resolved.
struct EventFields {
  int64_t dt_ns = 0;
  uint64_t tid = 0, address = 0;
  uint64_t size = 0, stack_id = 0;  // ALLOC only
};

// Decodes the ALLOC and FREE records of one record stream, in order (each is relative to the
// previous). False for a malformed payload, which leaves the state as it was.
class EventDecoder {
 public:
  bool decode(Record type, Fields& payload, EventFields* out);

 private:
  uint64_t last_tid_ = 0, last_address_ = 0;
};

// Iterates the records of a decompressed record stream.
class RecordReader {
 public:
  RecordReader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  // The next record; false at the end of the stream or at a record cut short (`truncated()`).
  bool next(Record* type, Fields* payload);
  bool truncated() const { return truncated_; }
  // Bytes consumed so far: a caller that feeds the stream in pieces keeps what is left over.
  size_t consumed(const uint8_t* start) const { return static_cast<size_t>(p_ - start); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  bool truncated_ = false;
};

// Varints, exposed for tests and for callers that size buffers.
size_t put_varint(uint8_t* out, uint64_t v);  // at most 10 bytes
inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

}  // namespace rsr::capture
