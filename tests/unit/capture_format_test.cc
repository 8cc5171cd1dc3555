// The capture file's encoding (common/capture.md): records written by RecordWriter read back by
// RecordReader field for field, buffers that are too small, and streams cut anywhere.
#include "capture_format.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace rsr::capture;
using rsr::FlatMap;
using rsr::Memory;
using rsr::MixHash;

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
  const uint64_t alloc_info = 1;
  EXPECT_TRUE(w.fields(Record::kAlloc, &alloc_info, 1));
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

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kAlloc);
  ASSERT_TRUE(f.v(&a));
  EXPECT_EQ(a, 1u);
  EXPECT_TRUE(f.at_end());

  ASSERT_TRUE(r.next(&t, &f));
  EXPECT_EQ(t, Record::kEnd);
  EXPECT_FALSE(r.next(&t, &f));
  EXPECT_FALSE(r.truncated());
  EXPECT_EQ(r.consumed(s.data()), s.size());
}

// One decoded event record: its type and its fields.
struct Rec {
  Record type;
  std::vector<uint64_t> v;
  bool operator==(const Rec&) const = default;
};

std::vector<Rec> records_of(const std::vector<uint8_t>& stream) {
  std::vector<Rec> out;
  RecordReader r(stream.data(), stream.size());
  Record t;
  Fields f(nullptr, 0);
  while (r.next(&t, &f)) {
    Rec rec{t, {}};
    uint64_t x;
    while (!f.at_end() && f.v(&x)) rec.v.push_back(x);
    out.push_back(rec);
  }
  return out;
}

const Memory kMalloc{std::malloc, std::free};

// An encoder over a growing stream: flushes move the writer's records into `stream`.
struct Encoded {
  explicit Encoded(uint64_t unit_ns, size_t writer_bytes = 1 << 16)
      : buf(writer_bytes), w(buf.data(), buf.size()), enc(kMalloc, unit_ns, w, &Encoded::flush, this) {}
  static bool flush(void* self) {
    Encoded& e = *static_cast<Encoded*>(self);
    e.stream.insert(e.stream.end(), e.w.data(), e.w.data() + e.w.size());
    e.w.clear();
    ++e.flushes;
    return true;
  }
  std::vector<Rec> records() {
    enc.end_tick();
    flush(this);
    return records_of(stream);
  }
  std::vector<uint8_t> buf;
  RecordWriter w;
  EventEncoder enc;
  std::vector<uint8_t> stream;
  int flushes = 0;
};

TEST(CaptureEvents, EncodesTicksThreadsPairsAndFreesByPosition) {
  Encoded e(1000);  // 1 us units
  e.enc.alloc(100, 7, 0x1000, 32, 1);     // tick 0
  e.enc.alloc(2500, 7, 0x2000, 32, 1);    // tick 2; same pair
  e.enc.free(2600, 9, 0x1000);            // another thread frees the first
  e.enc.free(2700, 9, 0x5555);            // never allocated here: nothing
  e.enc.alloc(2000, 9, 0x3000, 64, 0);    // earlier than the last: same tick
  e.enc.alloc(9000, 9, 0x2000, 16, 2);    // 0x2000 again: its free was lost
  e.enc.counters(9000, 1 << 20, 1 << 22);
  // TIMES first: ticks 0, 2 and 9 (as deltas) with 1, 3 and 2 ALLOC and FREE records. A FREE
  // names the pair and how many of the pair's ALLOCs back its block was (1: the latest).
  const std::vector<Rec> want = {
      {Record::kTimes, {3, 0, 1, 2, 3, 7, 2}},
      {Record::kSwitch, {7}},  {Record::kInfo, {32, 1}}, {Record::kAlloc, {1}},
      {Record::kAlloc, {1}},   {Record::kSwitch, {9}},
      {Record::kFree, {1, 2}}, {Record::kInfo, {64, 0}}, {Record::kAlloc, {2}},
      {Record::kFreeLatest, {1}},  {Record::kInfo, {16, 2}},
      {Record::kAlloc, {3}},   {Record::kCounters, {9, 1 << 20, 1 << 22}},
  };
  EXPECT_EQ(e.records(), want);
  EXPECT_EQ(e.enc.allocations(), 4u);
  EXPECT_EQ(e.enc.events(), 6u);
  EXPECT_EQ(e.enc.live_blocks(), 2u);
}

// Within one tick each thread's events go together; a free of a block another thread allocated
// in that tick waits for that thread's events up to its ALLOC.
TEST(CaptureEvents, GroupsATicksEventsByThreadKeepingEachFreeAfterItsAlloc) {
  Encoded e(1000000);
  e.enc.alloc(10, 1, 0xA0, 32, 1);  // A by thread 1
  e.enc.alloc(20, 2, 0xB0, 32, 1);  // B by thread 2
  e.enc.alloc(30, 1, 0xC0, 32, 1);  // C by thread 1
  e.enc.free(40, 2, 0xA0);          // thread 2 frees A
  e.enc.free(50, 1, 0xB0);          // thread 1 frees B
  e.enc.alloc(60, 2, 0xB0, 32, 1);  // the address of B again, by thread 2
  const std::vector<Rec> want = {
      {Record::kTimes, {1, 0, 6}},
      {Record::kSwitch, {1}},   {Record::kInfo, {32, 1}}, {Record::kAlloc, {1}},  // A: number 1
      {Record::kAlloc, {1}},                                                     // C: 2
      {Record::kSwitch, {2}},   {Record::kAlloc, {1}},                           // B: 3, before its free
      {Record::kSwitch, {1}},   {Record::kFreeLatest, {1}},                      // B
      {Record::kSwitch, {2}},   {Record::kFree, {1, 3}},                         // A
      {Record::kAlloc, {1}},                                                     // B's address again: 4
  };
  EXPECT_EQ(e.records(), want);
  EXPECT_EQ(e.enc.live_blocks(), 2u);  // C and the new block at B's address
  // The next tick frees them: both known by pair and number.
  e.enc.free(2000000, 1, 0xC0);
  e.enc.free(2000001, 1, 0xB0);
  const std::vector<Rec> all = e.records();
  const std::vector<Rec> tail(all.end() - 4, all.end());
  EXPECT_EQ(tail, (std::vector<Rec>{{Record::kTimes, {1, 2, 2}}, {Record::kSwitch, {1}}, {Record::kFree, {1, 3}},
                                    {Record::kFreeLatest, {1}}}));
}

TEST(CaptureEvents, FlushesWhenTheWriterIsFullAndLosesNothing) {
  Encoded small(1, 24 * 1024);  // room for a stage of records and its TIMES record
  Encoded big(1);
  for (int i = 0; i < 20000; ++i) {
    for (Encoded* e : {&small, &big}) {
      e->enc.alloc(i, 1 + i % 3, 0x1000 + 16 * (i % 50), 8 + i % 7, 1);
      if (i % 2) e->enc.free(i, 1 + i % 2, 0x1000 + 16 * ((i + 25) % 50));
    }
  }
  EXPECT_GT(small.flushes, 2);
  EXPECT_EQ(small.records(), big.records());
}

TEST(CaptureEvents, AServerLoopIsTheSameFewBytesOverAndOver) {
  Encoded e(1000000, 1 << 16);
  // Requests of a varying number of items between two fixed allocations: every FREE is still
  // "the pair's latest", the same bytes each time.
  int64_t t = 0;
  for (int i = 0; i < 1000; ++i) {
    e.enc.alloc(++t, 3, 0x7000, 100, 4);
    for (int k = 0; k < i % 5; ++k) {
      e.enc.alloc(++t, 3, 0x9000 + 64 * k, 24, 5);
      e.enc.free(++t, 3, 0x9000 + 64 * k);
    }
    e.enc.free(++t, 3, 0x7000);
  }
  const std::vector<Rec> got = e.records();
  std::set<std::vector<uint64_t>> frees;
  for (const Rec& r : got)
    if (r.type == Record::kFree || r.type == Record::kFreeLatest) frees.insert(r.v);
  EXPECT_EQ(frees, (std::set<std::vector<uint64_t>>{{1}, {2}}));
  // Two bytes each: a short record's type and its one-byte field.
  EXPECT_LT(e.stream.size(), 2u * (1000u + 2u * 2000u + 1000u) + 64u);
}

TEST(FlatMapTest, AgreesWithStdMapUnderRandomInsertsAndErases) {
  FlatMap<uint64_t, uint64_t, MixHash> m(kMalloc);
  std::map<uint64_t, uint64_t> ref;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200000; ++i) {
    const uint64_t k = 1 + rng() % 5000;
    if (rng() % 3 == 0) {
      uint64_t got = 0;
      const bool had = ref.erase(k) != 0;
      ASSERT_EQ(m.erase(k, &got), had);
    } else {
      bool fresh = false;
      uint64_t* v = m.insert(k, k * 3, &fresh);
      ASSERT_NE(v, nullptr);
      ASSERT_EQ(fresh, ref.emplace(k, k * 3).second);
    }
  }
  ASSERT_EQ(m.size(), ref.size());
  for (const auto& [k, v] : ref) {
    const uint64_t* got = m.find(k);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(*got, v);
  }
  size_t seen = 0;
  m.for_each([&](uint64_t k, uint64_t) { seen += ref.count(k); });
  EXPECT_EQ(seen, ref.size());
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
  const uint64_t info = 3;
  ASSERT_TRUE(w.fields(Record::kAlloc, &info, 1));
  const size_t before = w.size();
  EXPECT_FALSE(w.json(Record::kHeader, "a string longer than the room left"));
  EXPECT_EQ(w.size(), before);
  const uint64_t frames[16] = {};
  EXPECT_FALSE(w.stack(1, frames, 16));
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
