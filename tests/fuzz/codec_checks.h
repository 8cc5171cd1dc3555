// Properties of the control-protocol codec (common/protocol + common/json) that must hold for
// ANY input. Shared by the libFuzzer target (codec_fuzz.cc, clang builds) and by the gcc-built
// unit test tests/unit/codec_robustness_test.cc, which replays random and mutated inputs.
// A violated property aborts with a message naming it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "json.h"
#include "protocol.h"

namespace rsr_fuzz {

[[noreturn]] inline void violated(const char* what, std::string_view input) {
  std::fprintf(stderr, "codec property violated: %s\ninput (%zu bytes): ", what, input.size());
  for (unsigned char c : input.substr(0, 400)) std::fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 99;
    if (n == 99 || (n == 1 && c < 0xC2) || (n > 0 && i + n >= s.size())) return false;
    uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1F) : n == 2 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// Deepest nesting of brackets outside strings (an over-estimate inside malformed documents).
inline int nesting(std::string_view s) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// nlohmann turns integers that do not fit 64 bits into doubles and refuses those beyond 1e308.
inline size_t longest_digit_run(std::string_view s) {
  size_t best = 0, run = 0;
  for (char c : s) {
    run = (c >= '0' && c <= '9') ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

struct Buf {
  std::string s;
  void append(const char* p, size_t n) { s.append(p, n); }
};

inline void check_header(std::string_view in) {
  using namespace rsr::proto;
  FrameHeader h;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const DecodeStatus st = decode_header(p, in.size(), kMaxRequestBytes, &h);
  if (st != DecodeStatus::kOk) return;
  if (in.size() < kHeaderBytes) violated("header decoded from fewer than 12 bytes", in);
  if (h.length > kMaxRequestBytes) violated("decoded length above the limit", in);
  uint8_t again[kHeaderBytes];
  encode_header(h.kind, h.length, again);
  if (std::memcmp(again, p, kHeaderBytes) != 0) violated("decode/encode round trip changed the header", in);
}

inline void check_value_decoders(const rsr::json::Value& v, std::string_view in) {
  using rsr::json::Type;
  if (v.type == Type::kNone) return;
  if (!rsr::json::json_validate(v.raw)) violated("json_get returned text that is not valid JSON", in);
  const char first = v.raw.empty() ? '\0' : v.raw[0];
  const bool consistent = (v.type == Type::kString && first == '"') || (v.type == Type::kObject && first == '{') ||
                          (v.type == Type::kArray && first == '[') || (v.type == Type::kBool && (first == 't' || first == 'f')) ||
                          (v.type == Type::kNull && first == 'n') ||
                          (v.type == Type::kNumber && (first == '-' || (first >= '0' && first <= '9')));
  if (!consistent) violated("json_get type does not match the value's text", in);
  char small[8 + 8];
  std::memset(small, 0x5C, sizeof small);
  (void)rsr::json::json_string(v, small, 8);
  for (size_t i = 8; i < sizeof small; ++i)
    if (small[i] != 0x5C) violated("json_string wrote past its capacity", in);
  static char big[70000];
  if (rsr::json::json_string(v, big, sizeof big) && std::strlen(big) >= sizeof big)
    violated("json_string result not terminated", in);
  int64_t n;
  (void)rsr::json::json_int(v, &n);
  bool b;
  (void)rsr::json::json_bool(v, &b);
}

inline void check_json(std::string_view in) {
  const bool ours = rsr::json::json_validate(in);
  // Differential check against nlohmann::json on the documents where both must agree: valid
  // UTF-8 (RFC 8259 text), no \u escapes (nlohmann rejects unpaired surrogates), nesting within
  // our limit, and no numbers nlohmann cannot represent.
  // (nlohmann also stops at a NUL byte, so documents holding one are left out too.)
  if (valid_utf8(in) && in.find('\0') == std::string_view::npos && in.find("\\u") == std::string_view::npos &&
      nesting(in) <= rsr::json::kMaxDepth &&
      in.find_first_of("eE") == std::string_view::npos && longest_digit_run(in) < 300) {
    const bool theirs = nlohmann::json::accept(in);
    if (ours && !theirs) violated("json_validate accepted a document nlohmann rejects", in);
    if (!ours && theirs) violated("json_validate rejected a document nlohmann accepts", in);
  }
  if (ours) {
    for (const char* key : {"cmd", "top", "a", "", "k"}) check_value_decoders(rsr::json::json_get(in, key), in);
    // The first member's key, whatever it is.
    const size_t q = in.find('"');
    if (q != std::string_view::npos) {
      const size_t e = in.find('"', q + 1);
      if (e != std::string_view::npos) check_value_decoders(rsr::json::json_get(in, in.substr(q + 1, e - q - 1)), in);
    }
  }
  // Whatever the writer is given, it produces one valid JSON value.
  Buf out;
  rsr::json::JsonWriter<Buf> w(out);
  w.begin_object().field("v", in).key("a").begin_array().value(in.size()).raw(ours ? in : "null").end_array().end_object();
  if (!rsr::json::json_validate(out.s)) violated("JsonWriter produced invalid JSON", in);
  if (valid_utf8(in)) {
    const rsr::json::Value v = rsr::json::json_get(out.s, "v");
    static char back[70000];
    if (in.find('\0') == std::string_view::npos && in.size() < sizeof back && in.find("\\u") == std::string_view::npos) {
      if (!rsr::json::json_string(v, back, sizeof back) || std::string_view(back) != in)
        violated("a string written by JsonWriter does not decode back to itself", in);
    }
  }
}

inline void check_codec_input(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_header(in);
  check_json(in);
  if (size > rsr::proto::kHeaderBytes) check_json(in.substr(rsr::proto::kHeaderBytes));
}

}  // namespace rsr_fuzz
