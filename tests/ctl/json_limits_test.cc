// The bounds checked on JSON from untrusted peers before it is parsed (json_limits.h).
#include "json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(JsonLimits, DepthAndValues) {
  using rsr::ctl::json_limits_problem;
  EXPECT_EQ(json_limits_problem(R"({"a":[1,2,{"b":[]}]})", 4, 100), "");
  EXPECT_EQ(json_limits_problem(R"({"a":[1,2,{"b":[]}]})", 3, 100),
            "it is nested deeper than 3 levels");
  EXPECT_EQ(json_limits_problem("[" + std::string(5, '0') + "]", 1, 2), "");
  EXPECT_EQ(json_limits_problem("[0,0,0,0]", 8, 3), "it holds more than 3 values");
  // Brackets and commas inside strings, escaped quotes included, are text.
  EXPECT_EQ(json_limits_problem(R"(["[[[,,,\"[[[", "]]]"])", 1, 3), "");
}

}  // namespace
