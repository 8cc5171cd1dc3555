// scripts/env.template lists every setting, with its default, in a form the settings parser
// accepts: a template that drifts from common/config.h fails here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "config.h"

namespace {

std::map<std::string, std::string> read_template() {
  const char* path = std::getenv("RSR_ENV_TEMPLATE");
  EXPECT_NE(path, nullptr) << "RSR_ENV_TEMPLATE is not set: run through meson test";
  std::map<std::string, std::string> values;
  if (!path) return values;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    EXPECT_NE(eq, std::string::npos) << "not KEY=VALUE: " << line;
    if (eq == std::string::npos) continue;
    EXPECT_EQ(values.count(line.substr(0, eq)), 0u) << "listed twice: " << line;
    values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

TEST(EnvTemplate, ListsEverySettingWithItsDefault) {
  const auto values = read_template();
  size_t count = 0;
  const rsr::SettingInfo* rows = rsr::settings(&count);
  for (size_t i = 0; i < count; ++i) {
    const auto it = values.find(rows[i].env);
    ASSERT_NE(it, values.end()) << rows[i].env << " is missing from scripts/env.template";
    EXPECT_EQ(it->second, rows[i].default_text) << rows[i].env;
  }
  EXPECT_EQ(values.size(), count) << "the template lists a setting the library does not know";
}

TEST(EnvTemplate, ParsesWithoutWarnings) {
  static std::map<std::string, std::string> values;
  values = read_template();
  static int warnings = 0;
  warnings = 0;
  rsr::Config c;
  rsr::parse_config(
      [](const char* name) -> const char* {
        const auto it = values.find(name);
        return it == values.end() ? nullptr : it->second.c_str();
      },
      [](const char*, const char*, const char*, void*) { ++warnings; }, nullptr, &c);
  EXPECT_EQ(warnings, 0);
}

}  // namespace
