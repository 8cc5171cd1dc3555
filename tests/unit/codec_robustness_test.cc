// Replays the codec fuzzer's properties (tests/fuzz/codec_checks.h) over a deterministic stream
// of generated, mutated and random inputs, so that every build checks them, not only clang's.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../fuzz/codec_checks.h"

namespace {

struct Rng {
  uint64_t x;
  uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

// A random JSON value from a small grammar, including the characters parsers get wrong.
std::string gen_value(Rng& r, int depth) {
  static const char* const atoms[] = {"0", "-0", "1", "-12", "3.25", "-0.5", "123456789012345678901234567890",
                                      "true", "false", "null", "\"\"", "\"a\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                                      "\"caf\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\x7f\""};
  const size_t pick = r.below(depth > 6 ? 3 : 8);
  if (pick == 0) {
    std::string s = "[";
    const size_t n = r.below(4);
    for (size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::string(r.below(2) ? " " : "") + gen_value(r, depth + 1);
    return s + "]";
  }
  if (pick == 1) {
    std::string s = "{";
    const size_t n = r.below(4);
    for (size_t i = 0; i < n; ++i) {
      static const char* const keys[] = {"cmd", "top", "a", "", "k", "x y"};
      s += (i ? "," : "") + std::string("\"") + keys[r.below(6)] + "\"" + (r.below(2) ? " : " : ":") + gen_value(r, depth + 1);
    }
    return s + "}";
  }
  return atoms[r.below(sizeof atoms / sizeof atoms[0])];
}

std::string mutate(Rng& r, std::string s) {
  static const char kInteresting[] = "{}[]\",:\\0-+.eE \t\nutrfn\x01\x1f\x80\xff";
  const size_t edits = 1 + r.below(3);
  for (size_t e = 0; e < edits; ++e) {
    const size_t pos = r.below(s.size() + 1);
    switch (r.below(4)) {
      case 0:
        if (!s.empty() && pos < s.size()) s.erase(pos, 1 + r.below(3));
        break;
      case 1: s.insert(pos, 1, kInteresting[r.below(sizeof kInteresting - 1)]); break;
      case 2:
        if (pos < s.size()) s[pos] = kInteresting[r.below(sizeof kInteresting - 1)];
        break;
      default:
        if (pos < s.size()) s[pos] = static_cast<char>(s[pos] ^ (1 << r.below(8)));
    }
  }
  return s;
}

void feed(const std::string& s) { rsr_fuzz::check_codec_input(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(CodecRobustness, GeneratedDocuments) {
  Rng r{0xC0FFEE1234567ULL};
  for (int i = 0; i < 150000; ++i) feed(gen_value(r, 0));
}

TEST(CodecRobustness, MutatedDocuments) {
  Rng r{0xBADC0DE987ULL};
  for (int i = 0; i < 300000; ++i) feed(mutate(r, gen_value(r, 0)));
}

TEST(CodecRobustness, FramesAndRandomBytes) {
  Rng r{42};
  for (int i = 0; i < 100000; ++i) {
    std::string f(rsr::proto::kHeaderBytes, '\0');
    rsr::proto::encode_header(static_cast<rsr::proto::Kind>(1 + r.below(3)), static_cast<uint32_t>(r.below(70000)),
                              reinterpret_cast<uint8_t*>(f.data()));
    f += gen_value(r, 0);
    feed(mutate(r, f));
    std::string junk(r.below(64), '\0');
    for (char& c : junk) c = static_cast<char>(r.next());
    feed(junk);
  }
}

}  // namespace
