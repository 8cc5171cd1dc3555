// Unit tests of common/json: the strict validator, json_get and the value decoders, and
// JsonWriter. nlohmann::json serves as an independent oracle for what the writer produces
// (rsrmemctl parses every reply with it).
#include "json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <climits>
#include <cstring>
#include <string>
#include <vector>

namespace {

using rsr::json::json_bool;
using rsr::json::json_get;
using rsr::json::json_int;
using rsr::json::json_string;
using rsr::json::json_validate;
using rsr::json::JsonWriter;
using rsr::json::kMaxDepth;
using rsr::json::Type;
using rsr::json::Value;

struct StringBuf {
  std::string s;
  void append(const char* p, size_t n) { s.append(p, n); }
};

std::string nested_arrays(int depth, const std::string& inner) {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}
std::string nested_objects(int depth, const std::string& inner) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "{\"k\":";
  s += inner;
  for (int i = 0; i < depth; ++i) s += "}";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Validator

TEST(JsonValidate, AcceptsValidDocuments) {
  const std::vector<std::string> ok = {
      "{}", "[]", "0", "-0", "1", "-1", "123456789012345678901234567890", "1.5", "-0.0", "1e10",
      "1E+10", "1e-10", "2.5E-3", "0.0e0", "true", "false", "null", "\"\"", "\"abc\"",
      "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\uFFFF\\ud83d\\ude00\"", "\"caf\xc3\xa9\"",
      "\"\x7f\"", " \t\r\n{ \"a\" : 1 , \"b\" : [ 1 , 2 ] } \n",
      "{\"cmd\":\"summary\",\"top\":20}", "[1,\"a\",true,false,null,{},[],{\"x\":[{}]}]",
      "{\"a\":{\"b\":{\"c\":[1,2,{\"d\":null}]}}}", "{\"\":0}", "{\"a\":1,\"a\":2}",
  };
  for (const auto& doc : ok) EXPECT_TRUE(json_validate(doc)) << doc;
}

TEST(JsonValidate, RejectsMalformedDocuments) {
  const std::vector<std::string> bad = {
      // empty and truncated
      "", " ", "{", "[", "{\"a\"", "{\"a\":", "{\"a\":1", "[1,", "[1", "\"abc", "tru", "fals",
      "nul", "{\"cmd\":\"hel",
      // trailing garbage
      "{}x", "{} {}", "[] ]", "1 2", "truex", "nullnull", "{}\x01", std::string("{}\0", 3),
      // structure
      "{,}", "[,]", "{\"a\":1,}", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1 \"b\":2}", "{1:2}",
      "{a:1}", "{'a':1}", "['a']", "{\"a\":}", "{:1}", "]", "}", "[}", "{]",
      // numbers
      "-", "--1", "+1", "01", "-01", "00", "1.", ".5", "-.5", "1e", "1e+", "1E-", "0x10", "1.e3",
      "NaN", "Infinity", "-Infinity", "[01]", "[-]", "{\"a\":-}",
      // strings: escapes and control characters
      "\"\\x41\"", "\"\\u12G4\"", "\"\\u123\"", "\"\\U0041\"", "\"\\\"", "\"\\", "\"\\a\"",
      "\"\\'\"", "\"a\tb\"", "\"a\nb\"", "\"a\rb\"", std::string("\"a\0b\"", 5), "\"\x01\"",
      "\"\x1f\"",
      // literals
      "True", "FALSE", "Null", "undefined",
  };
  for (const auto& doc : bad) EXPECT_FALSE(json_validate(doc)) << "accepted: " << doc;
}

TEST(JsonValidate, DepthLimitIsExactly32) {
  // kMaxDepth containers may nest; one more is refused, whatever the innermost content is.
  ASSERT_EQ(kMaxDepth, 32);
  EXPECT_TRUE(json_validate(nested_arrays(32, "")));
  EXPECT_TRUE(json_validate(nested_arrays(32, "1")));
  EXPECT_TRUE(json_validate(nested_objects(32, "1")));
  EXPECT_TRUE(json_validate(nested_objects(31, "[]")));
  EXPECT_FALSE(json_validate(nested_arrays(33, "1")));
  EXPECT_FALSE(json_validate(nested_arrays(33, "")));
  EXPECT_FALSE(json_validate(nested_objects(33, "1")));
  EXPECT_FALSE(json_validate(nested_objects(33, "{}")));
  EXPECT_FALSE(json_validate(nested_objects(16, nested_arrays(17, "0"))));
}

TEST(JsonValidate, HugeNestingIsRefusedWithoutExhaustingTheStack) {
  EXPECT_FALSE(json_validate(std::string(1000000, '[')));
  EXPECT_FALSE(json_validate(nested_arrays(200000, "")));
  std::string objs;
  for (int i = 0; i < 100000; ++i) objs += "{\"a\":";
  EXPECT_FALSE(json_validate(objs));
}

TEST(JsonValidate, LongFlatDocumentsAreFine) {
  std::string doc = "[";
  for (int i = 0; i < 100000; ++i) doc += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  doc += "]";
  EXPECT_TRUE(json_validate(doc));
  doc.pop_back();
  EXPECT_FALSE(json_validate(doc));
}

// ---------------------------------------------------------------------------------------------
// json_get

TEST(JsonGet, FindsTopLevelMembersOfEveryType) {
  const std::string doc =
      R"( { "cmd" : "summary", "top": 20, "neg": -7, "f": 1.5e3, "yes": true, "no": false,)"
      R"( "nil": null, "obj": {"a": [1, 2], "b": {"c": "deep"}}, "arr": [ {"x":1}, 2 ] } )";
  ASSERT_TRUE(json_validate(doc));
  struct Want {
    const char* key;
    Type type;
    const char* raw;
  };
  const Want wants[] = {
      {"cmd", Type::kString, "\"summary\""},
      {"top", Type::kNumber, "20"},
      {"neg", Type::kNumber, "-7"},
      {"f", Type::kNumber, "1.5e3"},
      {"yes", Type::kBool, "true"},
      {"no", Type::kBool, "false"},
      {"nil", Type::kNull, "null"},
      {"obj", Type::kObject, R"({"a": [1, 2], "b": {"c": "deep"}})"},
      {"arr", Type::kArray, R"([ {"x":1}, 2 ])"},
  };
  for (const auto& w : wants) {
    const Value v = json_get(doc, w.key);
    EXPECT_EQ(v.type, w.type) << w.key;
    EXPECT_EQ(v.raw, w.raw) << w.key;
  }
}

TEST(JsonGet, NestedValuesThroughRawText) {
  const std::string doc = R"({"heap":{"live_bytes":123,"inner":{"x":"y"}},"sites":[1]})";
  const Value heap = json_get(doc, "heap");
  ASSERT_EQ(heap.type, Type::kObject);
  int64_t n = 0;
  EXPECT_TRUE(json_int(json_get(heap.raw, "live_bytes"), &n));
  EXPECT_EQ(n, 123);
  const Value inner = json_get(heap.raw, "inner");
  char buf[8];
  EXPECT_TRUE(json_string(json_get(inner.raw, "x"), buf, sizeof buf));
  EXPECT_STREQ(buf, "y");
}

TEST(JsonGet, MissingKeysAndNonObjects) {
  EXPECT_EQ(json_get("{}", "a").type, Type::kNone);
  EXPECT_EQ(json_get(R"({"a":1})", "b").type, Type::kNone);
  EXPECT_EQ(json_get(R"({"abc":1})", "ab").type, Type::kNone);
  EXPECT_EQ(json_get(R"({"ab":1})", "abc").type, Type::kNone);
  EXPECT_EQ(json_get(R"({"a":1})", "").type, Type::kNone);
  EXPECT_EQ(json_get("[1,2]", "a").type, Type::kNone);
  EXPECT_EQ(json_get("\"a\"", "a").type, Type::kNone);
  EXPECT_EQ(json_get("", "a").type, Type::kNone);
  // Member names are matched, not values or names of nested objects.
  EXPECT_EQ(json_get(R"({"x":"cmd"})", "cmd").type, Type::kNone);
  EXPECT_EQ(json_get(R"({"x":{"cmd":1}})", "cmd").type, Type::kNone);
  const Value v = json_get(R"({"x":{"cmd":1},"y":["cmd"],"cmd":2})", "cmd");
  EXPECT_EQ(v.type, Type::kNumber);
  EXPECT_EQ(v.raw, "2");
  EXPECT_EQ(json_get(R"({"":5})", "").raw, "5");
}

TEST(JsonGet, DuplicateKeysGiveTheFirst) {
  EXPECT_EQ(json_get(R"({"a":1,"a":2})", "a").raw, "1");
}

TEST(JsonGet, ValuesWithTrickyStrings) {
  const std::string doc = R"({"a":"x\"}, \"b\":1","b":"\\","c":"{[","d":3})";
  ASSERT_TRUE(json_validate(doc));
  EXPECT_EQ(json_get(doc, "b").raw, R"("\\")");
  EXPECT_EQ(json_get(doc, "c").raw, R"("{[")");
  EXPECT_EQ(json_get(doc, "d").raw, "3");
}

// ---------------------------------------------------------------------------------------------
// Decoders

Value str(const std::string& raw) { return Value{Type::kString, raw}; }
Value num(const std::string& raw) { return Value{Type::kNumber, raw}; }

TEST(JsonString, DecodesEscapes) {
  char buf[64];
  ASSERT_TRUE(json_string(str(R"("a\"b\\c\/d\ne\tf\rg\bh\fi")"), buf, sizeof buf));
  EXPECT_STREQ(buf, "a\"b\\c/d\ne\tf\rg\bh\fi");
  ASSERT_TRUE(json_string(str(R"("\u0041\u0062\u007e\u0001")"), buf, sizeof buf));
  EXPECT_STREQ(buf, "Ab~\x01");
  ASSERT_TRUE(json_string(str("\"\""), buf, sizeof buf));
  EXPECT_STREQ(buf, "");
  // Raw UTF-8 passes through unchanged.
  ASSERT_TRUE(json_string(str("\"caf\xc3\xa9\""), buf, sizeof buf));
  EXPECT_STREQ(buf, "caf\xc3\xa9");
}

// A valid JSON string with \u escapes beyond ASCII must decode to UTF-8: the header promises
// false only for non-strings, strings that do not fit, and strings holding a NUL.
TEST(JsonString, DecodesNonAsciiEscapesToUtf8) {
  char buf[64];
  ASSERT_TRUE(json_string(str(R"("caf\u00e9")"), buf, sizeof buf));
  EXPECT_STREQ(buf, "caf\xc3\xa9");
  ASSERT_TRUE(json_string(str(R"("\u20ac")"), buf, sizeof buf));
  EXPECT_STREQ(buf, "\xe2\x82\xac");
  ASSERT_TRUE(json_string(str(R"("\ud83d\ude00")"), buf, sizeof buf));
  EXPECT_STREQ(buf, "\xf0\x9f\x98\x80");
}

TEST(JsonString, RefusesWhatDoesNotFitOrIsNotAString) {
  char buf[4];
  EXPECT_TRUE(json_string(str("\"abc\""), buf, 4));
  EXPECT_STREQ(buf, "abc");
  EXPECT_FALSE(json_string(str("\"abcd\""), buf, 4));
  EXPECT_FALSE(json_string(str("\"a\""), buf, 0));
  EXPECT_TRUE(json_string(str("\"\""), buf, 1));
  EXPECT_FALSE(json_string(num("1"), buf, 4));
  EXPECT_FALSE(json_string(Value{}, buf, 4));
  EXPECT_FALSE(json_string(Value{Type::kNull, "null"}, buf, 4));
  char big[16];
  EXPECT_FALSE(json_string(str(R"("a\u0000b")"), big, sizeof big)) << "a NUL cannot be represented";
}

TEST(JsonString, DoesNotWritePastCap) {
  char buf[8];
  std::memset(buf, 'Z', sizeof buf);
  EXPECT_FALSE(json_string(str("\"abcdefgh\""), buf, 4));
  for (int i = 4; i < 8; ++i) EXPECT_EQ(buf[i], 'Z');
  std::memset(buf, 'Z', sizeof buf);
  EXPECT_FALSE(json_string(str(R"("\n\n\n\n")"), buf, 4));
  for (int i = 4; i < 8; ++i) EXPECT_EQ(buf[i], 'Z');
}

TEST(JsonDouble, NumbersOnly) {
  double d = 0;
  EXPECT_TRUE(rsr::json::json_double(num("0.5"), &d));
  EXPECT_EQ(d, 0.5);
  EXPECT_TRUE(rsr::json::json_double(num("-12"), &d));
  EXPECT_EQ(d, -12.0);
  EXPECT_TRUE(rsr::json::json_double(num("1e3"), &d));
  EXPECT_EQ(d, 1000.0);
  d = 7;
  EXPECT_FALSE(rsr::json::json_double(str(R"("10")"), &d));
  EXPECT_EQ(d, 7.0);
}

TEST(JsonInt, EdgeCases) {
  int64_t v = 42;
  EXPECT_TRUE(json_int(num("0"), &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(json_int(num("-0"), &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(json_int(num("20"), &v));
  EXPECT_EQ(v, 20);
  EXPECT_TRUE(json_int(num("-7"), &v));
  EXPECT_EQ(v, -7);
  EXPECT_TRUE(json_int(num("9223372036854775807"), &v));
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_TRUE(json_int(num("-9223372036854775808"), &v));
  EXPECT_EQ(v, INT64_MIN);
  v = 42;
  EXPECT_FALSE(json_int(num("9223372036854775808"), &v));
  EXPECT_FALSE(json_int(num("-9223372036854775809"), &v));
  EXPECT_FALSE(json_int(num("123456789012345678901234567890"), &v));
  EXPECT_FALSE(json_int(num("1.5"), &v));
  EXPECT_FALSE(json_int(num("1.0"), &v));
  EXPECT_FALSE(json_int(num("1e3"), &v));
  EXPECT_FALSE(json_int(str("\"5\""), &v));
  EXPECT_FALSE(json_int(Value{Type::kBool, "true"}, &v));
  EXPECT_FALSE(json_int(Value{}, &v));
  EXPECT_EQ(v, 42) << "a refused value must not be stored";
  // Through json_get, as the server reads arguments.
  EXPECT_TRUE(json_int(json_get(R"({"top": 1000})", "top"), &v));
  EXPECT_EQ(v, 1000);
}

TEST(JsonBool, OnlyBooleans) {
  bool b = false;
  EXPECT_TRUE(json_bool(json_get(R"({"v":true})", "v"), &b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(json_bool(json_get(R"({"v":false})", "v"), &b));
  EXPECT_FALSE(b);
  EXPECT_FALSE(json_bool(json_get(R"({"v":"true"})", "v"), &b));
  EXPECT_FALSE(json_bool(json_get(R"({"v":1})", "v"), &b));
  EXPECT_FALSE(json_bool(json_get(R"({"v":null})", "v"), &b));
}

// ---------------------------------------------------------------------------------------------
// Writer

TEST(JsonWriter, CommasAndNesting) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_object()
      .field("a", 1)
      .field("b", "two")
      .key("c")
      .begin_array()
      .value(1)
      .value(2)
      .begin_object()
      .end_object()
      .begin_array()
      .end_array()
      .begin_object()
      .field("x", true)
      .end_object()
      .null()
      .end_array()
      .key("d")
      .begin_object()
      .key("e")
      .begin_array()
      .end_array()
      .field("f", false)
      .end_object()
      .field("g", -3)
      .end_object();
  EXPECT_EQ(b.s, R"({"a":1,"b":"two","c":[1,2,{},[],{"x":true},null],"d":{"e":[],"f":false},"g":-3})");
  EXPECT_TRUE(json_validate(b.s));
}

TEST(JsonWriter, TopLevelArrayOfObjects) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_array();
  for (int i = 0; i < 3; ++i) w.begin_object().field("i", i).end_object();
  w.end_array();
  EXPECT_EQ(b.s, R"([{"i":0},{"i":1},{"i":2}])");
}

TEST(JsonWriter, EmptyContainers) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_object().end_object();
  EXPECT_EQ(b.s, "{}");
  StringBuf b2;
  JsonWriter<StringBuf> w2(b2);
  w2.begin_array().begin_array().end_array().end_array();
  EXPECT_EQ(b2.s, "[[]]");
}

TEST(JsonWriter, EscapesStrings) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  const std::string nasty = std::string("q\"b\\s/n\nr\rt\tb\bf\fz") + '\x01' + '\x1f' + '\x7f' + "end";
  w.begin_object().field("k\"ey", nasty).end_object();
  EXPECT_TRUE(json_validate(b.s)) << b.s;
  EXPECT_EQ(b.s.find('\n'), std::string::npos);
  EXPECT_EQ(b.s.find('\x01'), std::string::npos);
  // Decode it back with both our decoder and the independent one.
  const auto parsed = nlohmann::json::parse(b.s);
  EXPECT_EQ(parsed.at("k\"ey").get<std::string>(), nasty);
  char buf[128];
  // json_get compares raw key text, so look the value up through the raw member name.
  const Value v = json_get(b.s, "k\\\"ey");
  ASSERT_EQ(v.type, Type::kString);
  ASSERT_TRUE(json_string(v, buf, sizeof buf));
  EXPECT_EQ(std::string(buf), nasty);
}

TEST(JsonWriter, EveryControlCharacterRoundTrips) {
  for (int c = 1; c < 0x20; ++c) {
    StringBuf b;
    JsonWriter<StringBuf> w(b);
    const std::string s = std::string("a") + static_cast<char>(c) + "b";
    w.value(s);
    ASSERT_TRUE(json_validate(b.s)) << c;
    char buf[8];
    ASSERT_TRUE(json_string(Value{Type::kString, b.s}, buf, sizeof buf)) << c;
    EXPECT_EQ(std::string(buf), s) << c;
    EXPECT_EQ(nlohmann::json::parse(b.s).get<std::string>(), s) << c;
  }
}

TEST(JsonWriter, Numbers) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_array()
      .value(INT64_MIN)
      .value(INT64_MAX)
      .value(UINT64_MAX)
      .value(0)
      .value(-1)
      .value(0u)
      .value(static_cast<unsigned long>(ULONG_MAX))
      .value(0.5)
      .value(-0.0)
      .value(1e-300)
      .value(0.1)
      .end_array();
  ASSERT_TRUE(json_validate(b.s)) << b.s;
  const auto j = nlohmann::json::parse(b.s);
  EXPECT_EQ(j[0].get<int64_t>(), INT64_MIN);
  EXPECT_EQ(j[1].get<int64_t>(), INT64_MAX);
  EXPECT_EQ(j[2].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(j[7].get<double>(), 0.5);
  EXPECT_EQ(j[10].get<double>(), 0.1) << "doubles must round-trip exactly";
}

TEST(JsonWriter, NonFiniteDoublesBecomeNull) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_array().value(std::nan("")).value(HUGE_VAL).value(-HUGE_VAL).value(1.0).end_array();
  EXPECT_EQ(b.s, "[null,null,null,1]");
}

TEST(JsonWriter, NullCString) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_object().field("p", static_cast<const char*>(nullptr)).end_object();
  EXPECT_EQ(b.s, R"({"p":null})");
}

TEST(JsonWriter, RawIsPlacedLikeAValue) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  w.begin_object().key("a").raw("[1,2]").key("b").raw("{}").end_object();
  EXPECT_EQ(b.s, R"({"a":[1,2],"b":{}})");
}

TEST(JsonWriter, DeepNestingUpToTheLimitStaysValid) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  for (int i = 0; i < kMaxDepth; ++i) w.begin_array().value(i);
  for (int i = 0; i < kMaxDepth; ++i) w.value("x").end_array();
  EXPECT_TRUE(json_validate(b.s)) << b.s;
  EXPECT_NO_THROW(nlohmann::json::parse(b.s));
}

// The preload writes program paths and command lines, which may hold any bytes. Whatever it is
// given, the writer's output must be JSON that a strict parser (rsrmemctl's) accepts.
TEST(JsonWriter, ArbitraryBytesGiveParseableJson) {
  StringBuf b;
  JsonWriter<StringBuf> w(b);
  const std::string latin1 = "/srv/caf\xe9/bin";  // ISO-8859-1, not UTF-8
  w.begin_object().field("program", latin1).field("ok", "ascii").end_object();
  EXPECT_TRUE(json_validate(b.s));
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(b.s)) << b.s;
  EXPECT_EQ(j.at("ok").get<std::string>(), "ascii");
  EXPECT_EQ(j.at("program").get<std::string>(), "/srv/caf\xef\xbf\xbd/bin");  // U+FFFD
}

// Randomised: whatever the writer produces from random structure and strings is valid for
// both the validator and nlohmann, and strings decode back to themselves.
TEST(JsonWriter, RandomDocumentsAreValid) {
  uint64_t x = 0x243F6A8885A308D3ULL;
  auto rnd = [&]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int doc = 0; doc < 2000; ++doc) {
    StringBuf b;
    JsonWriter<StringBuf> w(b);
    std::vector<bool> is_object;  // stack of open containers
    w.begin_object();
    is_object.push_back(true);
    std::vector<std::string> strings;
    for (int step = 0; step < 60 && !is_object.empty(); ++step) {
      const bool in_obj = is_object.back();
      if (in_obj) w.key("k" + std::to_string(step));
      const int what = static_cast<int>(rnd() % 8);
      if ((what == 0 || what == 1) && is_object.size() < static_cast<size_t>(kMaxDepth)) {
        if (what == 0) w.begin_object(); else w.begin_array();
        is_object.push_back(what == 0);
        continue;
      }
      if (what == 2) {
        std::string s;
        const int len = static_cast<int>(rnd() % 12);
        for (int i = 0; i < len; ++i) s += static_cast<char>(1 + rnd() % 0x7f);  // ASCII, no NUL
        w.value(s);
      } else if (what == 3) {
        w.value(static_cast<int64_t>(rnd()));
      } else if (what == 4) {
        w.value(static_cast<double>(static_cast<int64_t>(rnd() % 2000000) - 1000000) / 7.0);
      } else if (what == 5) {
        w.value((rnd() & 1) != 0);
      } else if (what == 6) {
        w.null();
      } else {
        if (in_obj) w.null();
        if (is_object.back()) w.end_object(); else w.end_array();
        is_object.pop_back();
      }
    }
    while (!is_object.empty()) {
      if (is_object.back()) w.end_object(); else w.end_array();
      is_object.pop_back();
    }
    ASSERT_TRUE(json_validate(b.s)) << b.s;
    ASSERT_NO_THROW(nlohmann::json::parse(b.s)) << b.s;
  }
}

}  // namespace
