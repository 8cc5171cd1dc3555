// Splitting the command line at the first "--" before CLI11 sees it.
#include "cmdline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using rsr::ctl::split_at_double_dash;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(SplitAtDoubleDash, RunWithCommandOptions) {
  const char* argv[] = {"rsrmemctl", "run", "--env-file", "f.env", "--",
                        "./svc",     "-o",  "y",          "--",    "z"};
  const auto s = split_at_double_dash(10, argv);
  EXPECT_TRUE(s.has_separator);
  EXPECT_THAT(s.options, ElementsAre("rsrmemctl", "run", "--env-file", "f.env"));
  // Only the first "--" splits: later ones belong to the command.
  EXPECT_THAT(s.command, ElementsAre("./svc", "-o", "y", "--", "z"));
}

TEST(SplitAtDoubleDash, NoSeparator) {
  const char* argv[] = {"rsrmemctl", "--pid", "5", "status"};
  const auto s = split_at_double_dash(4, argv);
  EXPECT_FALSE(s.has_separator);
  EXPECT_THAT(s.options, ElementsAre("rsrmemctl", "--pid", "5", "status"));
  EXPECT_THAT(s.command, IsEmpty());
}

TEST(SplitAtDoubleDash, SeparatorWithNothingAfter) {
  const char* argv[] = {"rsrmemctl", "run", "--"};
  const auto s = split_at_double_dash(3, argv);
  EXPECT_TRUE(s.has_separator);
  EXPECT_THAT(s.options, ElementsAre("rsrmemctl", "run"));
  EXPECT_THAT(s.command, IsEmpty());
}

TEST(SplitAtDoubleDash, ProgramNameIsNeverTheSeparator) {
  const char* argv[] = {"--", "list"};
  const auto s = split_at_double_dash(2, argv);
  EXPECT_FALSE(s.has_separator);
  EXPECT_THAT(s.options, ElementsAre("--", "list"));
}

}  // namespace
