// Human units and tables.
#include "format.h"

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

}  // namespace
