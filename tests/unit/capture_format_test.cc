// The capture file's encoding (common/capture.md): records written by RecordWriter read back by
// RecordReader field for field, buffers that are too small, and streams cut anywhere.
#include "capture_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace rsr::capture;

TEST(CaptureVarint, RoundTripsEveryWidth) {
  std::mt19937_64 rng(3);
  for (int bits = 0; bits <= 64; ++bits) {
    for (int k = 0; k < 50; ++k) {
      const uint64_t v = bits == 0 ? 0 : bits == 64 ? rng() : rng() & ((uint64_t{1} << bits) - 1);
      uint8_t buf[10];
      const size_t n = put_varint(buf, v);
      ASSERT_LE(n, 10u);
      Fields f(buf, n);
      uint64_t back = 0;
      ASSERT_TRUE(f.v(&back));
      EXPECT_EQ(back, v);
      EXPECT_TRUE(f.at_end());
    }
  }
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, INT64_MIN, INT64_MAX, int64_t{-123456789}})
    EXPECT_EQ(unzigzag(zigzag(v)), v);
}

TEST(CaptureHeader, RoundTripsAndRejectsOtherFiles) {
  uint8_t h[kFileHeaderBytes];
  encode_file_header(h);
  uint16_t version = 0, compression = 0;
  ASSERT_TRUE(decode_file_header(h, sizeof h, &version, &compression));
  EXPECT_EQ(version, kVersion);
  EXPECT_EQ(compression, kCompressionZstd);
  EXPECT_FALSE(decode_file_header(h, sizeof h - 1, &version, &compression));
  h[0] = 'X';
  EXPECT_FALSE(decode_file_header(h, sizeof h, &version, &compression));
}

std::vector<uint8_t> sample_stream() {
  std::vector<uint8_t> buf(4096);
  RecordWriter w(buf.data(), buf.size());
  const uint64_t frames[] = {0x401000, 0x7f0000001234, 0x7fffffffffff};
  EXPECT_TRUE(w.json(Record::kHeader, R"({"format":"rsrmem-capture","version":1})"));
  EXPECT_TRUE(w.module(0x400000, 0x500000, 0, "/usr/bin/svc", "abcdef"));
  EXPECT_TRUE(w.thread(4242, "worker"));
  EXPECT_TRUE(w.stack(1, frames, 3));
  EXPECT_TRUE(w.alloc(150, 4242, 0x55550000, 48, 1));
  EXPECT_TRUE(w.free(-20, 4242, 0x55550000));
  EXPECT_TRUE(w.json(Record::kEnd, R"({"reason":"stopped"})"));
  buf.resize(w.size());
  return buf;
}

TEST(CaptureRecords, ReadBackFieldForField) {
  const std::vector<uint8_t> s = sample_stream();
  RecordReader r(s.data(), s.size());
  Record t;
  Fields f(nullptr, 0);
  std::string_view text;
  uint64_t a, b, c, d, e;
  int64_t dt;

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kHeader);
  ASSERT_TRUE(f.str(&text));
  EXPECT_EQ(text, R"({"format":"rsrmem-capture","version":1})");

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kModule);
  ASSERT_TRUE(f.v(&a) && f.v(&b) && f.v(&c));
  EXPECT_EQ(a, 0x400000u);
  EXPECT_EQ(b, 0x500000u);
  EXPECT_EQ(c, 0u);
  ASSERT_TRUE(f.str(&text));
  EXPECT_EQ(text, "/usr/bin/svc");
  ASSERT_TRUE(f.str(&text));
  EXPECT_EQ(text, "abcdef");
  EXPECT_TRUE(f.at_end());

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kThread);
  ASSERT_TRUE(f.v(&a) && f.str(&text));
  EXPECT_EQ(a, 4242u);
  EXPECT_EQ(text, "worker");

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kStack);
  ASSERT_TRUE(f.v(&a) && f.v(&b));
  EXPECT_EQ(a, 1u);
  ASSERT_EQ(b, 3u);
  ASSERT_TRUE(f.v(&c) && f.v(&d) && f.v(&e));
  EXPECT_EQ(c, 0x401000u);
  EXPECT_EQ(d, 0x7f0000001234u);
  EXPECT_EQ(e, 0x7fffffffffffu);

  // Events: the first one's thread is written out and its address is relative to 0; the next
  // one of the same thread at the same address is "0, 0".
  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kAlloc);
  {
    Fields raw = f;
    ASSERT_TRUE(raw.s(&dt) && raw.v(&a) && raw.v(&b));
    EXPECT_EQ(a, 4242u);
    EXPECT_EQ(unzigzag(b), 0x55550000);
  }
  EventDecoder events;
  EventFields ev;
  ASSERT_TRUE(events.decode(t, f, &ev));
  EXPECT_EQ(ev.dt_ns, 150);
  EXPECT_EQ(ev.tid, 4242u);
  EXPECT_EQ(ev.address, 0x55550000u);
  EXPECT_EQ(ev.size, 48u);
  EXPECT_EQ(ev.stack_id, 1u);

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kFree);
  {
    Fields raw = f;
    ASSERT_TRUE(raw.s(&dt) && raw.v(&a) && raw.v(&b));
    EXPECT_EQ(a, 0u);
    EXPECT_EQ(b, 0u);
    EXPECT_TRUE(raw.at_end());
  }
  ASSERT_TRUE(events.decode(t, f, &ev));
  EXPECT_EQ(ev.dt_ns, -20);
  EXPECT_EQ(ev.tid, 4242u);
  EXPECT_EQ(ev.address, 0x55550000u);

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kEnd);
  EXPECT_FALSE(r.next(&t, &f));
  EXPECT_FALSE(r.truncated());
  EXPECT_EQ(r.consumed(s.data()), s.size());
}

TEST(CaptureRecords, EventsAreRelativeToThePreviousOneAcrossThreadsAndFlushes) {
  struct In {
    bool alloc;
    uint64_t tid, address, size, stack;
  };
  const In in[] = {{true, 7, 0x7f0000001000, 32, 1},  {true, 7, 0x7f0000000fe0, 32, 1},
                   {false, 9, 0x7f0000001000, 0, 0},  {true, 9, 0x10, 1 << 20, 2},
                   {false, 7, 0xffffffffffffff00, 0, 0}, {false, 7, 0x7f0000000fe0, 0, 0}};
  std::vector<uint8_t> stream;
  std::vector<uint8_t> buf(64);
  RecordWriter w(buf.data(), buf.size());
  for (const In& e : in) {
    ASSERT_TRUE(e.alloc ? w.alloc(5, e.tid, e.address, e.size, e.stack) : w.free(5, e.tid, e.address));
    stream.insert(stream.end(), w.data(), w.data() + w.size());
    w.clear();  // a flush: the next frame goes on from the same state
  }
  RecordReader r(stream.data(), stream.size());
  EventDecoder events;
  Record t;
  Fields f(nullptr, 0);
  for (const In& e : in) {
    ASSERT_TRUE(r.next(&t, &f));
    EXPECT_EQ(t, e.alloc ? Record::kAlloc : Record::kFree);
    EventFields got;
    ASSERT_TRUE(events.decode(t, f, &got));
    EXPECT_EQ(got.tid, e.tid);
    EXPECT_EQ(got.address, e.address);
    EXPECT_EQ(got.size, e.size);
    EXPECT_EQ(got.stack_id, e.stack);
  }
  EXPECT_FALSE(r.next(&t, &f));
  // Mostly one-byte fields: six events in little more than six bytes each.
  EXPECT_LT(stream.size(), 6u * 12u);
}

TEST(CaptureRecords, AStreamCutAnywhereReadsTheWholeRecordsBeforeTheCut) {
  const std::vector<uint8_t> s = sample_stream();
  std::vector<size_t> ends;  // where each record ends
  {
    RecordReader r(s.data(), s.size());
    Record t;
    Fields f(nullptr, 0);
    while (r.next(&t, &f)) ends.push_back(r.consumed(s.data()));
  }
  for (size_t cut = 0; cut < s.size(); ++cut) {
    RecordReader r(s.data(), cut);
    Record t;
    Fields f(nullptr, 0);
    size_t records = 0;
    while (r.next(&t, &f)) ++records;
    size_t whole = 0;
    while (whole < ends.size() && ends[whole] <= cut) ++whole;
    EXPECT_EQ(records, whole) << "cut at " << cut;
    EXPECT_EQ(r.truncated(), cut != (whole ? ends[whole - 1] : 0)) << "cut at " << cut;
  }
}

TEST(CaptureRecords, AFullBufferRefusesAndKeepsWhatItHad) {
  uint8_t buf[16];
  RecordWriter w(buf, sizeof buf);
  ASSERT_TRUE(w.free(1, 2, 3));
  const size_t before = w.size();
  EXPECT_FALSE(w.json(Record::kHeader, "a string longer than the room left"));
  EXPECT_EQ(w.size(), before);
  const uint64_t frames[8] = {};
  EXPECT_FALSE(w.stack(1, frames, 8));
  EXPECT_EQ(w.size(), before);
  EXPECT_LE(w.size() + w.room(), sizeof buf);
}

TEST(CaptureRecords, MalformedPayloadsStopReading) {
  const uint8_t bad[] = {static_cast<uint8_t>(Record::kThread), 3, 0x81, 0x01, 9};  // name length 9 > rest
  RecordReader r(bad, sizeof bad);
  Record t;
  Fields f(nullptr, 0);
  ASSERT_TRUE(r.next(&t, &f));
  uint64_t tid = 0;
  std::string_view name;
  ASSERT_TRUE(f.v(&tid));
  EXPECT_EQ(tid, 129u);
  EXPECT_FALSE(f.str(&name));
  EXPECT_FALSE(f.v(&tid));
  const uint8_t endless[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  Fields g(endless, sizeof endless);
  EXPECT_FALSE(g.v(&tid));
}

}  // namespace
