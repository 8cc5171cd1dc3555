#include "protocol.h"

namespace rsr::proto {
namespace {

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t get_u32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

void encode_header(Kind kind, uint32_t length, uint8_t out[kHeaderBytes]) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(kMagic[i]);
  put_u16(out + 4, kProtocolVersion);
  put_u16(out + 6, static_cast<uint16_t>(kind));
  put_u32(out + 8, length);
}

DecodeStatus decode_header(const uint8_t* in, size_t n, uint32_t max_length, FrameHeader* out) {
  if (n < kHeaderBytes) return DecodeStatus::kShort;
  for (int i = 0; i < 4; ++i)
    if (in[i] != static_cast<uint8_t>(kMagic[i])) return DecodeStatus::kBadMagic;
  const uint16_t version = get_u16(in + 4);
  if (version != kProtocolVersion) return DecodeStatus::kBadVersion;
  const uint16_t kind = get_u16(in + 6);
  if (kind < static_cast<uint16_t>(Kind::kRequest) || kind > static_cast<uint16_t>(Kind::kError))
    return DecodeStatus::kBadKind;
  const uint32_t length = get_u32(in + 8);
  if (length > max_length) return DecodeStatus::kTooLarge;
  out->version = version;
  out->kind = static_cast<Kind>(kind);
  out->length = length;
  return DecodeStatus::kOk;
}

const char* describe(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::kOk: return "ok";
    case DecodeStatus::kShort: return "truncated frame header";
    case DecodeStatus::kBadMagic: return "not an rsrmem frame (bad magic)";
    case DecodeStatus::kBadVersion: return "unsupported protocol version";
    case DecodeStatus::kBadKind: return "unknown frame kind";
    case DecodeStatus::kTooLarge: return "frame larger than the limit";
  }
  return "unknown decode error";
}

pid_t socket_name_pid(std::string_view name) {
  constexpr std::string_view kSuffix = ".sock";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) return 0;
  const std::string_view digits = name.substr(0, name.size() - kSuffix.size());
  if (digits.size() > 10 || digits[0] == '0') return 0;
  int64_t pid = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return 0;
    pid = pid * 10 + (c - '0');
  }
  return pid <= 0x7fffffff ? static_cast<pid_t>(pid) : 0;
}

}  // namespace rsr::proto
