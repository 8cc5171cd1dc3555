// Human units and tables.
#include "format.h"
#include "spans.h"

#include <gtest/gtest.h>

#include <sstream>

namespace {

using namespace rsr::ctl;

TEST(Format, Bytes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1024), "1.00 KiB");
  EXPECT_EQ(human_bytes(1536), "1.50 KiB");
  EXPECT_EQ(human_bytes(12.5 * 1024 * 1024), "12.5 MiB");
  EXPECT_EQ(human_bytes(512.0 * 1024), "512.0 KiB");
  EXPECT_EQ(human_bytes(3.0 * 1024 * 1024 * 1024), "3.00 GiB");
  EXPECT_EQ(human_bytes(-2048), "-2.00 KiB");
  EXPECT_EQ(human_signed_bytes(2048), "+2.00 KiB");
  EXPECT_EQ(human_signed_bytes(-10), "-10 B");
  EXPECT_EQ(human_signed_bytes(0), "0 B");
}

TEST(Format, Counts) {
  EXPECT_EQ(human_count(0), "0");
  EXPECT_EQ(human_count(999), "999");
  EXPECT_EQ(human_count(1000), "1,000");
  EXPECT_EQ(human_count(1234567), "1,234,567");
  EXPECT_EQ(human_count(-4321), "-4,321");
  EXPECT_EQ(human_count(2.6), "3");
}

TEST(Format, Durations) {
  EXPECT_EQ(human_duration(0), "0s");
  EXPECT_EQ(human_duration(59.9), "59s");
  EXPECT_EQ(human_duration(60), "1m 00s");
  EXPECT_EQ(human_duration(252), "4m 12s");
  EXPECT_EQ(human_duration(2 * 3600 + 5 * 60 + 7), "2h 05m");
  EXPECT_EQ(human_duration(3 * 86400 + 4 * 3600), "3d 04h");
  EXPECT_EQ(human_duration(-1), "?");
}

TEST(Format, BaseName) {
  EXPECT_EQ(base_name("/usr/lib/x86_64-linux-gnu/libc.so.6"), "libc.so.6");
  EXPECT_EQ(base_name("svc"), "svc");
  EXPECT_EQ(base_name(""), "");
}

TEST(Format, TableAlignsColumnsAndLeavesTheLastUnpadded) {
  Table t({{"PID", Table::Align::kRight},
           {"MODE", Table::Align::kLeft},
           {"COMMAND", Table::Align::kLeft}});
  t.add_row({"7", "sampled", "./svc --port 8080"});
  t.add_row({"12345", "detailed", "a"});
  std::ostringstream out;
  t.render(out);
  EXPECT_EQ(out.str(),
            "  PID  MODE      COMMAND\n"
            "    7  sampled   ./svc --port 8080\n"
            "12345  detailed  a\n");
}

// Lengths of time: a bare number in the option's unit, units, sums of units in decreasing order,
// and a precise reason for each refusal.
TEST(Spans, UnitsAndSums) {
  EXPECT_DOUBLE_EQ(parse_span("90", 1), 90);
  EXPECT_DOUBLE_EQ(parse_span("10", 60), 600);
  EXPECT_DOUBLE_EQ(parse_span("0.5", 60), 30);
  EXPECT_DOUBLE_EQ(parse_span("30s", 60), 30);
  EXPECT_DOUBLE_EQ(parse_span("25h", 60), 90000);
  EXPECT_DOUBLE_EQ(parse_span("1h30m", 1), 5400);
  EXPECT_DOUBLE_EQ(parse_span("1d12h", 1), 129600);
  EXPECT_DOUBLE_EQ(parse_span("2m0.5s", 1), 120.5);
  EXPECT_DOUBLE_EQ(parse_span(".5m", 1), 30);
  const std::pair<std::string, std::string> bad[] = {
      {"", "empty"},
      {"-5s", "negative"},
      {"soon", "not a number"},
      {"inf", "not a number"},
      {"nan", "not a number"},
      {"1e3", "unknown unit 'e'"},
      {"0x1d", "unknown unit 'x'"},
      {"1..2", "not a number: '1..2'"},
      {"1" + std::string(400, '0') + "s", "out of range"},
      {"5x", "unknown unit 'x' (s, m, h or d)"},
      {"1h30", "'30' has no unit (s, m, h or d)"},
      {"30m1h", "units out of order (write 1h30m, not 30m1h)"},
      {"1h1h", "units out of order"},
      {"1h m", "not a number at ' m'"},
      {"2 m", "unknown unit ' ' (s, m, h or d)"},
  };
  for (const auto& [text, why] : bad) {
    try {
      parse_span(text, 1);
      ADD_FAILURE() << "accepted '" << text << "'";
    } catch (const SpanError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << text << ": " << e.what();
    }
  }
}

}  // namespace
