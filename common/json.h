// Minimal JSON for the control protocol, usable inside the preload: nothing here allocates.
//
// - json_validate: strict RFC 8259 check of a whole document (depth-limited), so a malformed
//   request is refused before anything reads it.
// - json_get: looks up one member of the top-level object and returns its raw text.
// - JsonWriter: appends JSON to any string-like buffer with append(const char*, size_t); the
//   preload gives it a buffer on its private heap, rsrmemctl a std::string.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace rsr::json {

inline constexpr int kMaxDepth = 32;

// True when `doc` is exactly one valid JSON value (surrounding whitespace allowed).
bool json_validate(std::string_view doc);

enum class Type { kNone, kString, kNumber, kBool, kNull, kObject, kArray };

struct Value {
  Type type = Type::kNone;
  std::string_view raw;  // the value's text as written (strings keep their quotes)
};

// Finds member `key` of the top-level object `doc` (which must already be valid).
Value json_get(std::string_view doc, std::string_view key);

// Decodes a string value into `out` (NUL-terminated). False when it is not a string, does not
// fit, or holds a NUL.
bool json_string(const Value& v, char* out, size_t cap);
// Parses an integer value. False when it is not an integer or is out of range.
bool json_int(const Value& v, int64_t* out);
// Parses any number value (integer, fraction, exponent). False when it is not a number.
bool json_double(const Value& v, double* out);
bool json_bool(const Value& v, bool* out);

template <class Buffer>
class JsonWriter {
 public:
  explicit JsonWriter(Buffer& out) : out_(out) {}

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }

  JsonWriter& key(std::string_view k) {
    separator();
    quoted(k);
    out_.append(":", 1);
    after_key_ = true;
    return *this;
  }
  JsonWriter& value(std::string_view s) {
    separator();
    quoted(s);
    return *this;
  }
  JsonWriter& value(const char* s) { return s ? value(std::string_view(s)) : null(); }
  JsonWriter& value(bool b) { return raw(b ? "true" : "false"); }
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(unsigned v) { return value(static_cast<uint64_t>(v)); }
  JsonWriter& value(long long v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(unsigned long long v) { return value(static_cast<uint64_t>(v)); }
  // std::to_chars: no locale, no allocation, several times faster than snprintf (replies list
  // thousands of numbers).
  JsonWriter& value(int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return raw(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }
  JsonWriter& value(uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return raw(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }
  JsonWriter& value(double v) {
    if (v != v || v > 1e300 || v < -1e300) return null();  // JSON has no NaN or infinity
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    return raw(std::string_view(buf, static_cast<size_t>(n)));
  }
  JsonWriter& null() { return raw("null"); }
  // Writes `text`, which must itself be valid JSON, as one value.
  JsonWriter& raw(std::string_view text) {
    separator();
    out_.append(text.data(), text.size());
    return *this;
  }
  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

 private:
  JsonWriter& open(char c) {
    separator();
    out_.append(&c, 1);
    if (depth_ < kMaxDepth) first_[depth_] = true;
    ++depth_;
    return *this;
  }
  JsonWriter& close(char c) {
    out_.append(&c, 1);
    if (depth_ > 0) --depth_;
    if (depth_ > 0 && depth_ <= kMaxDepth) first_[depth_ - 1] = false;
    return *this;
  }
  void separator() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ > 0 && depth_ <= kMaxDepth) {
      if (!first_[depth_ - 1]) out_.append(",", 1);
      first_[depth_ - 1] = false;
    }
  }
  // Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
  static size_t utf8_length(std::string_view s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) len = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000;
    else return 0;
    if (i + len > s.size()) return 0;
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
  }

  // Writes `s` as a JSON string. Bytes that are not valid UTF-8 (a Latin-1 path, say) become
  // U+FFFD, so every reader can parse the document.
  void quoted(std::string_view s) {
    out_.append("\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x80) {
        const size_t len = utf8_length(s, i);
        if (len > 0) {
          i += len - 1;
          continue;
        }
        out_.append(s.data() + start, i - start);
        out_.append("\\ufffd", 6);
        start = i + 1;
        continue;
      }
      const char* esc = nullptr;
      char ubuf[8];
      switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
          if (c < 0x20) {
            snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
            esc = ubuf;
          }
      }
      if (esc) {
        out_.append(s.data() + start, i - start);
        out_.append(esc, std::string_view(esc).size());
        start = i + 1;
      }
    }
    out_.append(s.data() + start, s.size() - start);
    out_.append("\"", 1);
  }

  Buffer& out_;
  int depth_ = 0;
  bool after_key_ = false;
  bool first_[kMaxDepth] = {};
};

}  // namespace rsr::json
