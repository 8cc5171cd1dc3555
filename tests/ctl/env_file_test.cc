// `run --env-file` parsing: the accepted syntax, warnings that do not stop the run, and errors
// that name file:line.
#include "env_file.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>

#include "errors.h"
#include "fake_server.h"

namespace {

using rsr::ctl::CtlError;
using rsr::ctl::EnvFile;
using rsr::ctl::parse_env_file;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::pair<std::string, std::string>> pairs(const EnvFile& f) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : f.entries) out.emplace_back(e.key, e.value);
  return out;
}

std::string error_of(const std::string& text) {
  try {
    parse_env_file(text, "svc.env");
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), rsr::ctl::kExitUsage);
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << text;
  return "";
}

TEST(EnvFile, SeedStyleTemplate) {
  const EnvFile f = parse_env_file(
      "# Core monitoring (recommended for production)\n"
      "RSR_MEMORY_MONITORING_ENABLED=true\n"
      "\n"
      "   # indented comment\n"
      "RSR_LEAK_GROWTH_THRESHOLD=0.2  # 20% memory growth\n"
      "RSR_LEAK_MEMORY_THRESHOLD_MB=100\n",
      "prod.env");
  EXPECT_THAT(
      pairs(f),
      ElementsAre(std::pair<std::string, std::string>{"RSR_MEMORY_MONITORING_ENABLED", "true"},
                  std::pair<std::string, std::string>{"RSR_LEAK_GROWTH_THRESHOLD", "0.2"},
                  std::pair<std::string, std::string>{"RSR_LEAK_MEMORY_THRESHOLD_MB", "100"}));
  EXPECT_THAT(f.warnings, IsEmpty());
  EXPECT_EQ(f.entries[1].line, 5);
}

TEST(EnvFile, QuotesExportBlanksAndCrlf) {
  const EnvFile f = parse_env_file(
      "export RSR_SERVICE_NAME=\"my service # not a comment\"  # a comment\r\n"
      "RSR_MEMORY_HEADER_PREFIX = 'X-\"Mem\"'\n"
      "RSR_PROFILING_OUTPUT_DIR=\"/var/tmp/a \\\"b\\\" \\\\c\"\n"
      "RSR_LOG_LEVEL=info#not-a-comment-without-a-blank\n"
      "RSR_SOCKET_DIR=\n"
      "RSR_ALLOWED_UIDS=\"\"\n",
      "svc.env");
  EXPECT_THAT(
      pairs(f),
      ElementsAre(
          std::pair<std::string, std::string>{"RSR_SERVICE_NAME", "my service # not a comment"},
          std::pair<std::string, std::string>{"RSR_MEMORY_HEADER_PREFIX", "X-\"Mem\""},
          std::pair<std::string, std::string>{"RSR_PROFILING_OUTPUT_DIR", "/var/tmp/a \"b\" \\c"},
          std::pair<std::string, std::string>{"RSR_LOG_LEVEL",
                                              "info#not-a-comment-without-a-blank"},
          std::pair<std::string, std::string>{"RSR_SOCKET_DIR", ""},
          std::pair<std::string, std::string>{"RSR_ALLOWED_UIDS", ""}));
  // info#... is not a valid log level: reported with its line, the service would use "warn".
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_THAT(f.warnings[0],
              HasSubstr("svc.env:4: RSR_LOG_LEVEL=info#not-a-comment-without-a-blank"));
  EXPECT_THAT(f.warnings[0], HasSubstr("will use warn"));
}

TEST(EnvFile, WarnsAboutUnknownKeysBadValuesAndRepeats) {
  const EnvFile f = parse_env_file(
      "PORT=8080\n"
      "RSR_LEAK_CHEK_INTERVAL=60\n"
      "RSR_LEAK_CHECK_INTERVAL=often\n"
      "RSR_STACK_DEPTH=32\n"
      "RSR_STACK_DEPTH=16\n",
      "svc.env");
  EXPECT_EQ(f.entries.size(), 4u);
  EXPECT_EQ(f.entries[3].value, "16");
  EXPECT_EQ(f.entries[3].line, 5);
  const std::string all = testing::PrintToString(f.warnings);
  EXPECT_THAT(all, HasSubstr("svc.env:5: RSR_STACK_DEPTH is set again (first on line 4)"));
  EXPECT_THAT(all, HasSubstr("svc.env:1: PORT is not an rsrmem setting"));
  EXPECT_THAT(all,
              HasSubstr("svc.env:2: RSR_LEAK_CHEK_INTERVAL is not an rsrmem setting (a typo?)"));
  EXPECT_THAT(all, HasSubstr("svc.env:3: RSR_LEAK_CHECK_INTERVAL=often is not a valid value; "
                             "the service will use 300"));
  EXPECT_EQ(f.warnings.size(), 4u);
}

TEST(EnvFile, MalformedLinesNameFileAndLine) {
  EXPECT_THAT(error_of("A=1\njust words\n"), HasSubstr("svc.env:2: expected '=' after just"));
  EXPECT_THAT(error_of("=value\n"), HasSubstr("svc.env:1: expected KEY=VALUE"));
  EXPECT_THAT(error_of("1KEY=value\n"), HasSubstr("svc.env:1: expected KEY=VALUE"));
  EXPECT_THAT(error_of("\n\nKEY=\"open\n"), HasSubstr("svc.env:3: unterminated double quote"));
  EXPECT_THAT(error_of("KEY='open\n"), HasSubstr("svc.env:1: unterminated single quote"));
  EXPECT_THAT(error_of("KEY=\"a\" b\n"),
              HasSubstr("svc.env:1: unexpected text after the closing quote of KEY: 'b'"));
  EXPECT_THAT(error_of("KEY-NAME=1\n"), HasSubstr("svc.env:1: expected '=' after KEY"));
}

TEST(EnvFile, EmptyFileAndNoTrailingNewline) {
  EXPECT_THAT(parse_env_file("", "e").entries, IsEmpty());
  const EnvFile f = parse_env_file("RSR_STACK_DEPTH=8", "e");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "8");
}

TEST(EnvFile, LoadReportsMissingFile) {
  try {
    rsr::ctl::load_env_file("/nonexistent/dir/svc.env");
    FAIL() << "no error";
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), rsr::ctl::kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("cannot read env file /nonexistent/dir/svc.env: No such file"));
  }
}

TEST(EnvFile, LoadReadsAFile) {
  rsrtest::TempDir dir;
  const std::string path = dir.path() + "/svc.env";
  std::ofstream(path) << "RSR_SERVICE_NAME=checkout\n";
  const EnvFile f = rsr::ctl::load_env_file(path);
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "checkout");
}

// A FIFO, a directory or a device is refused at once, never read: a FIFO's open would wait for a
// writer and a device's read never ends. (If the FIFO's open did block, the test's own writer
// frees it after 5 s, so a regression fails instead of hanging.)
TEST(EnvFile, LoadRefusesWhatIsNotARegularFile) {
  rsrtest::TempDir dir;
  const std::string fifo = dir.path() + "/svc.env";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto load = std::async(std::launch::async, [&] {
    try {
      rsr::ctl::load_env_file(fifo);
      return std::string("no error");
    } catch (const CtlError& e) {
      return std::string(e.what());
    }
  });
  if (load.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "load_env_file blocked on a FIFO";
    close(open(fifo.c_str(), O_WRONLY));
  }
  EXPECT_EQ(load.get(), "cannot read env file " + fifo + ": not a regular file (a FIFO)");
  for (const std::string& path : {dir.path(), std::string("/dev/null")}) {
    try {
      rsr::ctl::load_env_file(path);
      ADD_FAILURE() << "read " << path;
    } catch (const CtlError& e) {
      EXPECT_EQ(e.code(), rsr::ctl::kExitNotFound);
      EXPECT_THAT(e.what(), HasSubstr(path + ": not a regular file"));
    }
  }
}

TEST(EnvFile, LoadRefusesAHugeFile) {
  rsrtest::TempDir dir;
  const std::string path = dir.path() + "/huge.env";
  std::ofstream(path) << std::string(2 << 20, '#');
  try {
    rsr::ctl::load_env_file(path);
    ADD_FAILURE() << "read a 2 MiB env file";
  } catch (const CtlError& e) {
    EXPECT_THAT(e.what(), HasSubstr("larger than 1.00 MiB"));
  }
}

}  // namespace
