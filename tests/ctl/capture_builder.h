// Builds capture files (common/capture.md) for the reader and report tests: records through
// common/capture_format.h's RecordWriter, compressed as zstd frames after the file header.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "capture_format.h"
#include "symbolizer.h"

namespace rsrtest {

class CaptureBuilder {
 public:
  // `unit_ns`: the time unit, as the header's time_unit_ns says (1 when it names none).
  explicit CaptureBuilder(uint64_t unit_ns = 1)
      : encoder_{rsr::Memory{std::malloc, std::free}, unit_ns, writer_, &CaptureBuilder::flush, this} {}
  CaptureBuilder(const CaptureBuilder&) = delete;
  CaptureBuilder& operator=(const CaptureBuilder&) = delete;

  void json(rsr::capture::Record type, const std::string& text) {
    put([&](rsr::capture::RecordWriter& w) { return w.json(type, text); });
  }
  void module(const rsr::ctl::ModuleInfo& m) {
    put([&](rsr::capture::RecordWriter& w) {
      return w.module(m.start, m.end, m.base, m.path, m.build_id);
    });
  }
  void stack(uint64_t id, const std::vector<uint64_t>& frames) {
    put([&](rsr::capture::RecordWriter& w) { return w.stack(id, frames.data(), frames.size()); });
  }
  void thread(uint64_t tid, const std::string& name) {
    put([&](rsr::capture::RecordWriter& w) { return w.thread(tid, name); });
  }
  // Events in time order; times are nanoseconds since the capture's start (the header's
  // time_unit_ns, 1 when it names none). The encoder writes them as the library does.
  void alloc(int64_t t, uint64_t tid, uint64_t address, uint64_t size, uint64_t stack) {
    encoder_.alloc(t, tid, address, size, stack);
  }
  void free(int64_t t, uint64_t tid, uint64_t address) { encoder_.free(t, tid, address); }
  void counters(int64_t t, uint64_t heap, uint64_t rss) {
    encoder_.counters(t, heap, rss);
    flush(this);
  }
  // A record of varint fields, written as it is (for malformed streams).
  void raw(rsr::capture::Record type, const std::vector<uint64_t>& values) {
    put([&](rsr::capture::RecordWriter& w) { return w.fields(type, values.data(), values.size()); });
  }
  // Ends the current zstd frame: the next records go into a new one.
  void cut_frame() {
    encoder_.end_tick();
    flush(this);
    frames_.emplace_back();
  }

  // The whole file: header, then one zstd frame per cut_frame() section.
  std::string bytes() {
    encoder_.end_tick();
    flush(this);
    uint8_t header[rsr::capture::kFileHeaderBytes];
    rsr::capture::encode_file_header(header);
    std::string out(reinterpret_cast<char*>(header), sizeof header);
    for (const std::vector<uint8_t>& f : frames_) {
      if (f.empty()) continue;
      std::vector<char> z(ZSTD_compressBound(f.size()));
      const size_t n = ZSTD_compress(z.data(), z.size(), f.data(), f.size(), 3);
      if (ZSTD_isError(n)) throw std::runtime_error("zstd failed");
      out.append(z.data(), n);
    }
    return out;
  }

 private:
  // Another record: the events held are written first.
  template <class F>
  void put(F&& write) {
    encoder_.end_tick();
    flush(this);
    if (!write(writer_)) throw std::runtime_error("record too large");
    flush(this);
  }
  static bool flush(void* self) {
    CaptureBuilder& b = *static_cast<CaptureBuilder*>(self);
    b.frames_.back().insert(b.frames_.back().end(), b.writer_.data(), b.writer_.data() + b.writer_.size());
    b.writer_.clear();
    return true;
  }

  std::vector<uint8_t> buf_ = std::vector<uint8_t>(1 << 16);
  rsr::capture::RecordWriter writer_{buf_.data(), buf_.size()};
  std::vector<std::vector<uint8_t>> frames_{1};
  rsr::capture::EventEncoder encoder_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

}  // namespace rsrtest
