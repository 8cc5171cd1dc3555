// Unit tests of common/protocol: the 12-byte frame header.
#include "protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

namespace {

using namespace rsr::proto;

TEST(Protocol, HeaderLayoutIsLittleEndian) {
  uint8_t h[kHeaderBytes];
  encode_header(Kind::kResponse, 0x01020304u, h);
  const uint8_t want[kHeaderBytes] = {'R', 'S', 'R', 'M', 1, 0, 2, 0, 0x04, 0x03, 0x02, 0x01};
  EXPECT_EQ(std::memcmp(h, want, kHeaderBytes), 0);
  ASSERT_EQ(kHeaderBytes, 12u);
  ASSERT_EQ(kProtocolVersion, 1);
}

TEST(Protocol, RoundTripEveryKindAndLength) {
  for (Kind k : {Kind::kRequest, Kind::kResponse, Kind::kError}) {
    for (uint32_t len : {0u, 1u, 255u, 256u, 65535u, kMaxRequestBytes, kMaxResponseBytes}) {
      uint8_t h[kHeaderBytes];
      encode_header(k, len, h);
      FrameHeader out;
      out.length = 12345;
      ASSERT_EQ(decode_header(h, sizeof h, kMaxResponseBytes, &out), DecodeStatus::kOk);
      EXPECT_EQ(out.kind, k);
      EXPECT_EQ(out.length, len);
      EXPECT_EQ(out.version, kProtocolVersion);
    }
  }
}

TEST(Protocol, ExtraBytesAfterTheHeaderAreNotItsBusiness) {
  uint8_t buf[64];
  std::memset(buf, 0xEE, sizeof buf);
  encode_header(Kind::kRequest, 7, buf);
  FrameHeader out;
  EXPECT_EQ(decode_header(buf, sizeof buf, kMaxRequestBytes, &out), DecodeStatus::kOk);
  EXPECT_EQ(out.length, 7u);
}

TEST(Protocol, ShortHeader) {
  uint8_t h[kHeaderBytes];
  encode_header(Kind::kRequest, 5, h);
  for (size_t n = 0; n < kHeaderBytes; ++n) {
    FrameHeader out;
    EXPECT_EQ(decode_header(h, n, kMaxRequestBytes, &out), DecodeStatus::kShort) << n;
  }
}

TEST(Protocol, BadMagic) {
  for (int pos = 0; pos < 4; ++pos) {
    uint8_t h[kHeaderBytes];
    encode_header(Kind::kRequest, 5, h);
    h[pos] ^= 0x20;  // e.g. 'R' -> 'r'
    FrameHeader out;
    EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kBadMagic) << pos;
  }
  // An HTTP request or a JSON body sent without framing is refused as bad magic.
  for (const char* junk : {"GET / HTTP/1.1\r\n", "{\"cmd\":\"hello\"}"}) {
    FrameHeader out;
    EXPECT_EQ(decode_header(reinterpret_cast<const uint8_t*>(junk), std::strlen(junk), kMaxRequestBytes, &out),
              DecodeStatus::kBadMagic)
        << junk;
  }
}

TEST(Protocol, BadVersion) {
  for (uint16_t v : {0, 2, 3, 0x0100, 0xFFFF}) {
    uint8_t h[kHeaderBytes];
    encode_header(Kind::kRequest, 5, h);
    h[4] = static_cast<uint8_t>(v);
    h[5] = static_cast<uint8_t>(v >> 8);
    FrameHeader out;
    EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kBadVersion) << v;
  }
}

TEST(Protocol, BadKind) {
  for (uint16_t k : {0, 4, 5, 0x0100, 0x0200, 0xFFFF}) {
    uint8_t h[kHeaderBytes];
    encode_header(Kind::kRequest, 5, h);
    h[6] = static_cast<uint8_t>(k);
    h[7] = static_cast<uint8_t>(k >> 8);
    FrameHeader out;
    EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kBadKind) << k;
  }
}

TEST(Protocol, OversizedLength) {
  uint8_t h[kHeaderBytes];
  FrameHeader out;
  encode_header(Kind::kRequest, kMaxRequestBytes, h);
  EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kOk);
  encode_header(Kind::kRequest, kMaxRequestBytes + 1, h);
  EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kTooLarge);
  encode_header(Kind::kRequest, 0xFFFFFFFFu, h);
  EXPECT_EQ(decode_header(h, sizeof h, kMaxRequestBytes, &out), DecodeStatus::kTooLarge);
  EXPECT_EQ(decode_header(h, sizeof h, kMaxResponseBytes, &out), DecodeStatus::kTooLarge);
  encode_header(Kind::kResponse, kMaxResponseBytes, h);
  EXPECT_EQ(decode_header(h, sizeof h, kMaxResponseBytes, &out), DecodeStatus::kOk);
  EXPECT_EQ(decode_header(h, sizeof h, 0, &out), DecodeStatus::kTooLarge);
}

TEST(Protocol, ChecksComeInOrder) {
  // A header that is wrong in several ways reports the first problem a reader meets.
  uint8_t h[kHeaderBytes] = {'X', 'S', 'R', 'M', 9, 0, 9, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  FrameHeader out;
  EXPECT_EQ(decode_header(h, sizeof h, 10, &out), DecodeStatus::kBadMagic);
  h[0] = 'R';
  EXPECT_EQ(decode_header(h, sizeof h, 10, &out), DecodeStatus::kBadVersion);
  h[4] = 1;
  EXPECT_EQ(decode_header(h, sizeof h, 10, &out), DecodeStatus::kBadKind);
  h[6] = 1;
  EXPECT_EQ(decode_header(h, sizeof h, 10, &out), DecodeStatus::kTooLarge);
}

TEST(Protocol, DescribeIsDistinctAndNonEmpty) {
  std::set<std::string> seen;
  for (DecodeStatus s : {DecodeStatus::kOk, DecodeStatus::kShort, DecodeStatus::kBadMagic, DecodeStatus::kBadVersion,
                         DecodeStatus::kBadKind, DecodeStatus::kTooLarge}) {
    const char* d = describe(s);
    ASSERT_NE(d, nullptr);
    EXPECT_GT(std::strlen(d), 1u);
    EXPECT_TRUE(seen.insert(d).second) << d;
  }
}

TEST(Protocol, EveryByteValueInEveryPositionIsHandled) {
  // Exhaustive single-byte corruption: decode never reports kOk for a header that differs from
  // a valid one in magic, version or kind, and a length change is reported as such.
  uint8_t good[kHeaderBytes];
  encode_header(Kind::kRequest, 100, good);
  for (size_t pos = 0; pos < kHeaderBytes; ++pos) {
    for (int b = 0; b < 256; ++b) {
      uint8_t h[kHeaderBytes];
      std::memcpy(h, good, sizeof h);
      h[pos] = static_cast<uint8_t>(b);
      FrameHeader out;
      const DecodeStatus st = decode_header(h, sizeof h, kMaxRequestBytes, &out);
      if (b == good[pos]) {
        EXPECT_EQ(st, DecodeStatus::kOk);
      } else if (pos < 4) {
        EXPECT_EQ(st, DecodeStatus::kBadMagic);
      } else if (pos < 6) {
        EXPECT_EQ(st, DecodeStatus::kBadVersion);
      } else if (pos < 8) {
        const bool valid_kind = pos == 6 && b >= 1 && b <= 3;
        EXPECT_EQ(st, valid_kind ? DecodeStatus::kOk : DecodeStatus::kBadKind) << pos << " " << b;
      } else {
        uint32_t len = 0;
        for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(h[8 + i]) << (8 * i);
        EXPECT_EQ(st, len > kMaxRequestBytes ? DecodeStatus::kTooLarge : DecodeStatus::kOk);
        if (st == DecodeStatus::kOk) {
          EXPECT_EQ(out.length, len);
        }
      }
    }
  }
}

}  // namespace
