// Hostile capture files (common/capture.md) for the hostile-captures test: well-formed captures
// whose module paths name what must never be opened, and files whose declared lengths, counts
// and compressed sizes are built to make a careless reader hang, grow without bound or crash.
// Everything is built in memory in milliseconds: the bombs are handcrafted zstd RLE blocks or a
// small compressed frame repeated, never gigabytes compressed here.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "capture_builder.h"
#include "capture_format.h"

namespace hostile {

using rsr::capture::Record;

inline std::string varint(uint64_t v) {
  uint8_t buf[10];
  const size_t n = rsr::capture::put_varint(buf, v);
  return std::string(reinterpret_cast<char*>(buf), n);
}

// A record with whatever payload length it declares, followed by `payload`.
inline std::string record(Record type, uint64_t declared, const std::string& payload = "") {
  return std::string(1, static_cast<char>(type)) + varint(declared) + payload;
}

inline std::string file_header() {
  uint8_t h[rsr::capture::kFileHeaderBytes];
  rsr::capture::encode_file_header(h);
  return std::string(reinterpret_cast<char*>(h), sizeof h);
}

inline std::string zstd_frame(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 3);
  if (ZSTD_isError(n)) throw std::runtime_error("zstd failed");
  out.resize(n);
  return out;
}

// One zstd frame that decompresses to `n` copies of `byte`, as RLE blocks of 128 KiB: 4 bytes
// of file per 128 KiB decompressed. No content size in the frame header, so nothing warns the
// reader before it has decompressed it.
inline std::string rle_frame(uint8_t byte, uint64_t n) {
  constexpr uint32_t kBlock = 128 * 1024;
  std::string out = {'\x28', '\xb5', '\x2f', '\xfd'};  // magic 0xFD2FB528
  out += '\x00';                                     // no checksum, no content size, no dict
  out += static_cast<char>(7 << 3);                  // window 2^(10+7) = 128 KiB
  while (n > 0) {
    const uint32_t size = static_cast<uint32_t>(std::min<uint64_t>(n, kBlock));
    n -= size;
    const uint32_t h = (n == 0 ? 1u : 0u) | (1u << 1) | (size << 3);  // last, RLE, size
    out += static_cast<char>(h & 0xff);
    out += static_cast<char>((h >> 8) & 0xff);
    out += static_cast<char>((h >> 16) & 0xff);
    out += static_cast<char>(byte);
  }
  return out;
}

inline const char* kHeaderJson =
    R"({"format":"rsrmem-capture","version":1,"id":"background_1764400000","kind":"background",)"
    R"("pid":4242,"program":"/usr/bin/svc","service":"svc","hostname":"h",)"
    R"("start_time":1764400000.0,"duration_s":60,"max_bytes":1048576})";
inline const char* kEndJson =
    R"({"reason":"duration","truncated":false,"end_time":1764400060.0,"events":3,)"
    R"("dropped_events":0})";

// The HEADER record alone, as the first zstd frame of a file: what the bombs follow.
inline std::string header_frame() {
  std::vector<uint8_t> buf(4096);
  rsr::capture::RecordWriter w(buf.data(), buf.size());
  w.json(Record::kHeader, kHeaderJson);
  return zstd_frame(std::string(reinterpret_cast<const char*>(w.data()), w.size()));
}

// A complete, well-formed capture whose one stack (frames at `offsets` into `modules[0]`) has
// one block still live at the end (--leaks) and one freed at once by its thread (--temporary),
// so every view has to symbolize it.
inline std::string capture_with_modules(const std::vector<rsr::ctl::ModuleInfo>& modules,
                                        const std::vector<uint64_t>& offsets = {0x1000, 0x2000}) {
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader, kHeaderJson);
  b.cut_frame();
  for (const rsr::ctl::ModuleInfo& m : modules) b.module(m);
  b.thread(100, "main");
  const uint64_t base = modules.empty() ? 0x400000 : modules[0].start;
  std::vector<uint64_t> frames;
  for (uint64_t o : offsets) frames.push_back(base + o);
  b.stack(1, frames);
  b.alloc(1000, 100, 0x10000, 64, 1);
  b.alloc(2000, 100, 0x20000, 32, 1);
  b.free(3000, 100, 0x20000);
  b.json(Record::kEnd, kEndJson);
  return b.bytes();
}

// A module at 0x400000..0x500000 read from `path`.
inline rsr::ctl::ModuleInfo module_at(const std::string& path, const std::string& build_id = "") {
  rsr::ctl::ModuleInfo m;
  m.path = path;
  m.build_id = build_id;
  m.base = m.start = 0x400000;
  m.end = 0x500000;
  return m;
}

// Header, then a STACK record that declares 2^50 bytes of payload and is followed by `follow`
// bytes of zeros: a reader that waits for the record to complete keeps all of them.
inline std::string huge_record(uint64_t follow) {
  return file_header() + header_frame() +
         zstd_frame(record(Record::kStack, uint64_t{1} << 50)) + rle_frame(0, follow);
}

// Header, then `n` zero bytes: records of unknown type 0 and length 0, each skipped. Bounded
// memory, but unbounded work unless decompression is bounded.
inline std::string zero_bomb(uint64_t n) { return file_header() + header_frame() + rle_frame(0, n); }

// Header, then `copies` identical frames each holding `per_frame` records `rec` back to back.
inline std::string repeated_records(const std::string& rec, size_t per_frame, size_t copies) {
  std::string raw;
  for (size_t i = 0; i < per_frame; ++i) raw += rec;
  const std::string frame = zstd_frame(raw);
  std::string out = file_header() + header_frame();
  for (size_t i = 0; i < copies; ++i) out += frame;
  return out;
}

// One (size, stack) pair, then ALLOC records of it, never freed: every one is a new live block.
// 3 bytes each decompressed.
inline std::string alloc_bomb(size_t copies) {
  const std::string info = varint(32) + varint(0);
  const std::string raw = record(Record::kInfo, info.size(), info);
  std::string out = repeated_records(record(Record::kAlloc, 1, varint(1)), 1 << 17, copies);
  // The pair goes first, in a frame of its own after the header's.
  const std::string head = file_header() + header_frame();
  return head + zstd_frame(raw) + out.substr(head.size());
}

// FREE records of a block that is not live: each one malformed, so no memory grows, only the
// work.
inline std::string free_storm(size_t copies) {
  return repeated_records(record(Record::kFree, 2, varint(1) + varint(1)), 1 << 17, copies);
}

// STACK records of `frames` zero-address frames each, ids 1..count, one zstd frame each: 8 bytes
// per frame for a reader that keeps them, 1 byte per frame in the file before compression.
inline std::string stack_bomb(uint64_t frames, uint64_t count) {
  std::string out = file_header() + header_frame();
  std::string frame_bytes(frames, '\0');
  for (uint64_t id = 1; id <= count; ++id) {
    const std::string payload = varint(id) + varint(frames) + frame_bytes;
    out += zstd_frame(record(Record::kStack, payload.size(), payload));
  }
  return out;
}

// THREAD records with distinct ids and names of `name_bytes` bytes, in zstd frames of at most
// 256 KiB as the library writes them.
inline std::string thread_bomb(uint64_t name_bytes, uint64_t count) {
  std::string out = file_header() + header_frame();
  const std::string name(name_bytes, 'n');
  std::string raw;
  for (uint64_t tid = 1; tid <= count; ++tid) {
    const std::string payload = varint(tid) + varint(name.size()) + name;
    const std::string rec = record(Record::kThread, payload.size(), payload);
    if (raw.size() + rec.size() > (256u << 10)) {
      out += zstd_frame(raw);
      raw.clear();
    }
    raw += rec;
  }
  return out + zstd_frame(raw);
}

// `modules` small MODULE records that hold none of the stacks' addresses, then the one that
// does (so a lookup that walks the list walks all of it), and stacks whose frames are
// `addresses` distinct addresses, each allocated once.
inline std::string module_maze(uint64_t modules, uint64_t addresses, const std::string& dir) {
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader, kHeaderJson);
  for (uint64_t i = 0; i <= modules; ++i) {
    rsr::ctl::ModuleInfo m;
    m.path = dir + "/" + std::to_string(i);
    m.base = m.start = i < modules ? 0x10000000 + i * 0x1000 : 0x40000000;
    m.end = i < modules ? m.start + 0x800 : 0x50000000;
    b.module(m);
    if (i % 2048 == 2047) b.cut_frame();
  }
  constexpr uint64_t kFrames = 64;
  uint64_t next = 0x40000000;
  for (uint64_t id = 1; id * kFrames <= addresses; ++id) {
    std::vector<uint64_t> frames;
    for (uint64_t k = 0; k < kFrames; ++k) frames.push_back(next += 4);
    b.stack(id, frames);
    b.alloc(static_cast<int64_t>(id), 100, id * 64, 16, id);
    if (id % 512 == 0) b.cut_frame();
  }
  b.json(Record::kEnd, kEndJson);
  return b.bytes();
}

// Stacks of 64 frames at `count` distinct addresses spread over [start, start + size) of
// `path` (its own addresses: the module is mapped at 0), each allocated once; every other block
// is freed at once (--temporary), the others stay (--leaks).
inline std::string frames_in(const std::string& path, uint64_t start, uint64_t size,
                             uint64_t count) {
  rsrtest::CaptureBuilder b;
  b.json(Record::kHeader, kHeaderJson);
  rsr::ctl::ModuleInfo m;
  m.path = path;
  m.start = start;
  m.end = start + size;
  b.module(m);
  const uint64_t step = size / count;
  uint64_t next = start;
  for (uint64_t id = 1; id * 64 <= count; ++id) {
    std::vector<uint64_t> frames;
    for (int k = 0; k < 64; ++k) frames.push_back(next += step);
    b.stack(id, frames);
    b.alloc(static_cast<int64_t>(2 * id), 100, id * 64, 16, id);
    if (id % 2) b.free(static_cast<int64_t>(2 * id + 1), 100, id * 64);
    if (id % 256 == 0) b.cut_frame();
  }
  b.json(Record::kEnd, kEndJson);
  return b.bytes();
}

// A HEADER whose JSON nests arrays `depth` deep inside a field.
inline std::string deep_json_header(size_t depth) {
  const std::string json = R"({"id":"background_1","kind":"background","cmdline":)" +
                           std::string(depth, '[') + std::string(depth, ']') + "}";
  std::string raw = record(Record::kHeader, varint(json.size()).size() + json.size(),
                           varint(json.size()) + json);
  return file_header() + zstd_frame(raw);
}

}  // namespace hostile
