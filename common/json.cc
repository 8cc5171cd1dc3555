#include "json.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace rsr::json {
namespace {

// A recursive-descent reader over a string_view; `pos` advances past what was read.
struct Reader {
  std::string_view s;
  size_t pos = 0;

  bool at_end() const { return pos >= s.size(); }
  char peek() const { return at_end() ? '\0' : s[pos]; }
  void skip_ws() {
    while (!at_end() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
  }
  bool literal(std::string_view word) {
    if (s.substr(pos, word.size()) != word) return false;
    pos += word.size();
    return true;
  }
  static bool hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }
  bool string() {
    if (peek() != '"') return false;
    ++pos;
    while (!at_end()) {
      const unsigned char c = static_cast<unsigned char>(s[pos++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (at_end()) return false;
        const char e = s[pos++];
        if (e == 'u') {
          for (int i = 0; i < 4; ++i)
            if (at_end() || !hex(s[pos++])) return false;
        } else if (!std::strchr("\"\\/bfnrt", e) || e == '\0') {
          return false;
        }
      }
    }
    return false;
  }
  bool digits() {
    size_t start = pos;
    while (!at_end() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    return pos > start;
  }
  bool number() {
    if (peek() == '-') ++pos;
    if (peek() == '0') {
      ++pos;
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.') {
      ++pos;
      if (!digits()) return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos;
      if (peek() == '+' || peek() == '-') ++pos;
      if (!digits()) return false;
    }
    return true;
  }
  // Reads one value; `type` tells what it was.
  // `depth` counts the containers already open around this value (at most kMaxDepth).
  bool value(int depth, Type* type) {
    skip_ws();
    switch (peek()) {
      case '{': *type = Type::kObject; return depth < kMaxDepth && object(depth + 1);
      case '[': *type = Type::kArray; return depth < kMaxDepth && array(depth + 1);
      case '"': *type = Type::kString; return string();
      case 't': *type = Type::kBool; return literal("true");
      case 'f': *type = Type::kBool; return literal("false");
      case 'n': *type = Type::kNull; return literal("null");
      default: *type = Type::kNumber; return number();
    }
  }
  bool object(int depth) {
    ++pos;  // '{'
    skip_ws();
    if (peek() == '}') {
      ++pos;
      return true;
    }
    for (;;) {
      skip_ws();
      if (!string()) return false;
      skip_ws();
      if (peek() != ':') return false;
      ++pos;
      Type t;
      if (!value(depth, &t)) return false;
      skip_ws();
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == '}') {
        ++pos;
        return true;
      }
      return false;
    }
  }
  bool array(int depth) {
    ++pos;  // '['
    skip_ws();
    if (peek() == ']') {
      ++pos;
      return true;
    }
    for (;;) {
      Type t;
      if (!value(depth, &t)) return false;
      skip_ws();
      if (peek() == ',') {
        ++pos;
        continue;
      }
      if (peek() == ']') {
        ++pos;
        return true;
      }
      return false;
    }
  }
};

}  // namespace

bool json_validate(std::string_view doc) {
  Reader r{doc};
  Type t;
  if (!r.value(0, &t)) return false;
  r.skip_ws();
  return r.at_end();
}

Value json_get(std::string_view doc, std::string_view key) {
  Reader r{doc};
  r.skip_ws();
  if (r.peek() != '{') return {};
  ++r.pos;
  for (;;) {
    r.skip_ws();
    const size_t key_start = r.pos;
    if (!r.string()) return {};
    // Keys in requests are plain ASCII; compare the text between the quotes.
    const std::string_view k = doc.substr(key_start + 1, r.pos - key_start - 2);
    r.skip_ws();
    if (r.peek() != ':') return {};
    ++r.pos;
    r.skip_ws();
    const size_t value_start = r.pos;
    Type t;
    if (!r.value(1, &t)) return {};
    if (k == key) return Value{t, doc.substr(value_start, r.pos - value_start)};
    r.skip_ws();
    if (r.peek() != ',') return {};
    ++r.pos;
  }
}

namespace {

int hex_value(std::string_view h) {
  int v = 0;
  for (char c : h) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

// Appends code point `cp` as UTF-8; false when it does not fit.
bool put_utf8(uint32_t cp, char* out, size_t cap, size_t* n) {
  char b[4];
  size_t len;
  if (cp < 0x80) {
    b[0] = static_cast<char>(cp);
    len = 1;
  } else if (cp < 0x800) {
    b[0] = static_cast<char>(0xC0 | (cp >> 6));
    b[1] = static_cast<char>(0x80 | (cp & 0x3F));
    len = 2;
  } else if (cp < 0x10000) {
    b[0] = static_cast<char>(0xE0 | (cp >> 12));
    b[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    b[2] = static_cast<char>(0x80 | (cp & 0x3F));
    len = 3;
  } else {
    b[0] = static_cast<char>(0xF0 | (cp >> 18));
    b[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    b[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    b[3] = static_cast<char>(0x80 | (cp & 0x3F));
    len = 4;
  }
  if (*n + len >= cap) return false;
  std::memcpy(out + *n, b, len);
  *n += len;
  return true;
}

}  // namespace

bool json_string(const Value& v, char* out, size_t cap) {
  if (v.type != Type::kString || cap == 0) return false;
  size_t n = 0;
  const std::string_view body = v.raw.substr(1, v.raw.size() - 2);
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c == '\\') {
      const char e = body[++i];
      switch (e) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          int cp = hex_value(body.substr(i + 1, 4));
          i += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair encodes one code point
            if (body.substr(i + 1, 2) != "\\u") return false;
            const int low = hex_value(body.substr(i + 3, 4));
            if (low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;  // a lone low surrogate
          }
          if (cp <= 0) return false;  // NUL cannot be carried in a C string
          if (!put_utf8(static_cast<uint32_t>(cp), out, cap, &n)) return false;
          continue;
        }
        default: c = e;
      }
    }
    if (n + 1 >= cap) return false;
    out[n++] = c;
  }
  out[n] = '\0';
  return true;
}

bool json_int(const Value& v, int64_t* out) {
  if (v.type != Type::kNumber || v.raw.size() > 20) return false;
  char buf[24];
  std::memcpy(buf, v.raw.data(), v.raw.size());
  buf[v.raw.size()] = '\0';
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(buf, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = x;
  return true;
}

bool json_double(const Value& v, double* out) {
  char buf[64];
  if (v.type != Type::kNumber || v.raw.empty() || v.raw.size() >= sizeof buf) return false;
  std::memcpy(buf, v.raw.data(), v.raw.size());
  buf[v.raw.size()] = '\0';
  char* end = nullptr;
  const double x = std::strtod(buf, &end);
  if (*end != '\0') return false;
  *out = x;
  return true;
}

bool json_bool(const Value& v, bool* out) {
  if (v.type != Type::kBool) return false;
  *out = v.raw == "true";
  return true;
}

}  // namespace rsr::json
