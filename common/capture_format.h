// The capture file's encoding (common/capture.md): the file header, varints and records. No
// allocation and no exceptions, so the preload's writer thread uses it as rsrmemctl's reader does.
// Compression (zstd frames around the record stream) is the caller's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "flat_map.h"

namespace rsr::capture {

inline constexpr char kMagic[8] = {'R', 'S', 'R', 'M', 'C', 'A', 'P', 'T'};
inline constexpr uint16_t kVersion = 2;
inline constexpr uint16_t kCompressionZstd = 1;
inline constexpr size_t kFileHeaderBytes = 16;

enum class Record : uint8_t {
  kHeader = 1,
  kModule = 2,
  kStack = 3,
  kThread = 4,
  // 5 and 6 were version 1's ALLOC and FREE.
  kEnd = 7,
  kInfo = 9,
  kFree = 11,
  kCounters = 13,
  kTimes = 14,
  // Short records (types 0x80 and up): the type, then exactly one varint, no length.
  kAlloc = 0x82,
  kFreeLatest = 0x83,
  kSwitch = 0x84,
};
inline constexpr bool is_short(Record type) { return static_cast<uint8_t>(type) >= 0x80; }

// The most bytes EventEncoder writes for one event (see there), and a STACK record of `frames`
// frames.
inline constexpr size_t kMaxEventBytes = 5 * (2 + 2 * 10);
constexpr size_t max_stack_bytes(size_t frames) { return 1 + 5 + 10 + 10 + 10 * frames; }

void encode_file_header(uint8_t out[kFileHeaderBytes]);
// False when `in` is not a capture header; version and compression are returned as found.
bool decode_file_header(const uint8_t* in, size_t n, uint16_t* version, uint16_t* compression);

// Appends records to a caller-owned buffer. Each append returns false, and leaves the buffer as
// it was, when the record does not fit.
class RecordWriter {
 public:
  RecordWriter(uint8_t* buf, size_t capacity) : buf_(buf), cap_(capacity) {}

  bool json(Record type, std::string_view text);  // HEADER or END
  bool module(uint64_t start, uint64_t end, uint64_t base, std::string_view path, std::string_view build_id);
  bool stack(uint64_t id, const uint64_t* frames, size_t n);
  bool thread(uint64_t tid, std::string_view name);
  // Bytes already encoded as records.
  bool raw(const uint8_t* p, size_t n);
  // A record of `n` varint fields (INFO, FREE, COUNTERS, TIMES), or a short record's one field.
  bool fields(Record type, const uint64_t* values, size_t n);

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
};

// Turns a process's allocation events, given in time order, into the event records (capture.md).
// Events are held until their time unit (tick) ends, then written thread by thread: for each
// thread with events in that tick a SWITCH and its events in their order (an INFO the
// first time a (size, stack) pair is seen, ALLOC with the pair's id, FREE naming its block by its
// pair and by how many of the pair's ALLOCs back it was: FREE1 for the latest). Within a tick a
// thread's run is interrupted only where it frees a block another thread allocated in that tick
// and not yet written: that thread's events up to the ALLOC go first. Grouping by thread keeps
// SWITCH records few (a multi-threaded program's file shrinks three- to fourfold). The records
// of up to 256 ticks are staged and written after one TIMES record that says how many ALLOC and
// FREE records each tick holds: times kept out of the records' run let a request loop's repeating
// records compress as one long repeat (a server loop's file shrinks fivefold).
//
// It keeps the blocks allocated so far and not freed (address -> pair and number among the
// pair's ALLOCs), the pairs' ids and each pair's ALLOC count. A free of a block it does not hold
// (allocated before the capture) writes nothing. Records go to `w`; when it has less than
// kMaxEventBytes of room, `flush(ctx)` must empty it (false: the encoder stops writing, and
// keeps its state). `w` must hold at least 24 KiB (a stage of records and its TIMES).
class EventEncoder {
 public:
  using Flush = bool (*)(void* ctx);
  EventEncoder(Memory m, uint64_t unit_ns, RecordWriter& w, Flush flush, void* ctx)
      : mem_(m), w_(w), flush_(flush), ctx_(ctx), blocks_(m), infos_(m), unit_ns_(unit_ns ? unit_ns : 1) {}
  ~EventEncoder() {
    mem_.release(counts_);
    mem_.release(tick_events_);
    mem_.release(threads_);
    mem_.release(stage_buf_);
  }
  EventEncoder(const EventEncoder&) = delete;
  EventEncoder& operator=(const EventEncoder&) = delete;

  // `t_ns`: nanoseconds since the capture's start; a time earlier than the previous event's is
  // taken as that one's.
  void alloc(int64_t t_ns, uint64_t tid, uint64_t address, uint64_t size, uint64_t stack);
  void free(int64_t t_ns, uint64_t tid, uint64_t address);
  // The process's heap and resident bytes at `t_ns` (COUNTERS); the events held are written first.
  void counters(int64_t t_ns, uint64_t heap_bytes, uint64_t rss_bytes);
  // Writes the events held (the caller is about to end the stream or wants it all written).
  void end_tick();

  uint64_t allocations() const { return allocs_; }
  // ALLOC and FREE records written.
  uint64_t events() const { return allocs_ + frees_; }
  uint64_t live_blocks() const { return blocks_.size(); }
  // Blocks allocated whose free cannot be written: memory ran out.
  uint64_t untracked() const { return untracked_; }
  bool failed() const { return failed_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Block {
    uint64_t pair, number;  // the pair's id and which of its ALLOCs (from 1); pair 0: the tick's
                            // ALLOC event `number`, not yet written
  };
  struct Event {
    uint64_t address;
    uint64_t a, b;         // ALLOC: size, stack, then (once written) pair, number; FREE: the
                           // block's pair, number when it was written before the tick
    uint32_t alloc_at;     // FREE of a block allocated in this tick: its ALLOC event; else kNone
    uint32_t next;         // the thread's next event in the tick, or kNone
    uint32_t thread;       // index in threads_
    uint8_t alloc, done;
  };
  struct Thread {
    uint64_t tid;
    uint32_t first, last, cursor;
  };

  bool room();
  // The held tick's records into the stage, its entry into times_.
  void close_tick();
  // TIMES, then the staged records, to w_.
  void write_stage();
  // An entry in times_ for the records written since the last one, at the held tick.
  void note_time();
  bool reserve(size_t n);
  // Adds an event of `tid` to the tick; false when memory ran out.
  Event* add(uint64_t tid);
  void start_tick(int64_t t_ns);
  // Writes thread `t`'s events up to `stop` (inclusive; kNone: all of them).
  void write_thread(uint32_t t, uint32_t stop);
  void write_event(Event& e);
  // The pair's id, with its INFO record written when new; 0 when memory ran out.
  uint64_t pair(uint64_t size, uint64_t stack);
  void write_free(uint64_t pair, uint64_t number);
  // Doubles `array` (new entries zero) when it holds fewer than `need`.
  template <class T>
  bool grow(T*& array, uint32_t& cap, uint32_t need);

  Memory mem_;
  RecordWriter& w_;
  Flush flush_;
  void* ctx_;
  FlatMap<uint64_t, Block, MixHash> blocks_;       // address -> block
  FlatMap<KeyPair, uint64_t, KeyPairHash> infos_;  // (size, stack + 1) -> pair id
  uint64_t* counts_ = nullptr;                     // ALLOCs per pair id
  uint32_t counts_cap_ = 0;
  Event* tick_events_ = nullptr;
  uint32_t tick_cap_ = 0, tick_n_ = 0;
  Thread* threads_ = nullptr;
  uint32_t threads_cap_ = 0, threads_n_ = 0;
  uint8_t* stage_buf_ = nullptr;
  RecordWriter stage_{nullptr, 0};
  uint64_t times_[2 * 256];  // (units since the previous entry, ALLOC and FREE records) per tick
  uint32_t times_n_ = 0;
  uint64_t noted_ = 0;       // events() at the last entry
  uint64_t unit_ns_;
  uint64_t tick_ = 0;        // the time unit of the last entry in times_ (or written)
  uint64_t held_tick_ = 0;   // the time unit of the events held
  uint64_t tid_ = 0;         // thread of the last SWITCH
  uint64_t allocs_ = 0;      // ALLOC records written
  uint64_t frees_ = 0;       // FREE records written
  uint64_t pairs_ = 0;       // INFO records written
  uint64_t untracked_ = 0;
  bool failed_ = false;
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
