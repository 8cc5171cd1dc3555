// The --timeout watchdog (watchdog.h), in child processes since it ends the process it watches.
#include "watchdog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace watchdog = rsr::ctl::watchdog;

class Watchdog : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(Watchdog, EndsACommandThatRunsPastItsTimeout) {
  EXPECT_EXIT(
      {
        watchdog::arm(200ms);
        watchdog::renew(200ms, "querying pid 42 (/run/rsrmem/42.sock)");
        std::this_thread::sleep_for(10s);
        std::exit(0);
      },
      ::testing::ExitedWithCode(4),
      "rsrmemctl: timed out after 0.2 s \\(--timeout 0.2\\): querying pid 42 "
      "\\(/run/rsrmem/42.sock\\) did not finish in time; giving up");
}

TEST_F(Watchdog, EachRenewalGivesAFullTimeout) {
  EXPECT_EXIT(
      {
        watchdog::arm(300ms);
        for (int i = 0; i < 8; ++i) {  // 1.6 s in all, never 300 ms without a renewal
          std::this_thread::sleep_for(200ms);
          watchdog::renew(300ms, "querying pid " + std::to_string(i));
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(Watchdog, DoesNothingUnlessArmed) {
  EXPECT_EXIT(
      {
        watchdog::renew(1ms, "serving");
        std::this_thread::sleep_for(300ms);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
