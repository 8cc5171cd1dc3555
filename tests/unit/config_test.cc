// Unit tests of common/config: defaults, parsing of valid values, one warning per bad value,
// and format_setting round trips.
#include "config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using rsr::Config;

struct Warning {
  std::string name, value, used;
};

// Collects what parse_config reports; the environment is a map the test fills.
struct Env {
  std::map<std::string, std::string> vars;
  std::vector<Warning> warnings;

  Config parse() {
    current = this;
    Config c;
    std::memset(&c, 0xA5, sizeof c);  // garbage in every field parse_config must overwrite
    rsr::parse_config(&get, &warn, this, &c);
    current = nullptr;
    return c;
  }

  static inline Env* current = nullptr;
  static const char* get(const char* name) {
    auto it = current->vars.find(name);
    return it == current->vars.end() ? nullptr : it->second.c_str();
  }
  static void warn(const char* name, const char* value, const char* used, void* ctx) {
    static_cast<Env*>(ctx)->warnings.push_back(
        {name ? name : "(null)", value ? value : "(null)", used ? used : "(null)"});
  }
};

std::string fmt(const Config& c, const char* env) {
  char buf[rsr::kPathMax + 64];
  EXPECT_TRUE(rsr::format_setting(c, env, buf, sizeof buf)) << env;
  return buf;
}

std::string default_text(const char* env) {
  size_t n = 0;
  const rsr::SettingInfo* s = rsr::settings(&n);
  for (size_t i = 0; i < n; ++i)
    if (std::strcmp(s[i].env, env) == 0) return s[i].default_text;
  ADD_FAILURE() << "no setting " << env;
  return {};
}

Config defaults() {
  Env e;
  Config c = e.parse();
  EXPECT_TRUE(e.warnings.empty());
  return c;
}

std::string full(double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Field-by-field equality through the settings X-macro, so new settings are covered too.
::testing::AssertionResult configs_equal(const Config& a, const Config& b) {
  std::string diffs;
#define RSR_EQ_Bool(f) (a.f == b.f)
#define RSR_EQ_Int(f) (a.f == b.f)
#define RSR_EQ_Real(f) (a.f == b.f)
#define RSR_EQ_Str(f) (std::strcmp(a.f, b.f) == 0)
#define RSR_EQ_Path(f) (std::strcmp(a.f, b.f) == 0)
#define RSR_SHOW_Bool(f, env) fmt(a, env) + "' vs '" + fmt(b, env)
#define RSR_SHOW_Int(f, env) fmt(a, env) + "' vs '" + fmt(b, env)
#define RSR_SHOW_Real(f, env) full(a.f) + "' vs '" + full(b.f)
#define RSR_SHOW_Str(f, env) fmt(a, env) + "' vs '" + fmt(b, env)
#define RSR_SHOW_Path(f, env) fmt(a, env) + "' vs '" + fmt(b, env)
#define RSR_CMP(kind, f, env, def, lo, hi, help) \
  if (!RSR_EQ_##kind(f)) diffs += std::string(" ") + env + ": '" + RSR_SHOW_##kind(f, env) + "'";
  RSR_SETTINGS(RSR_CMP)
#undef RSR_CMP
  if (diffs.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "configs differ:" << diffs;
}

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaults, MatchTheSeed) {
  const Config c = defaults();
  EXPECT_TRUE(c.memory_monitoring_enabled);
  EXPECT_TRUE(c.prometheus_metrics_enabled);
  EXPECT_TRUE(c.leak_detection_enabled);
  EXPECT_EQ(c.leak_check_interval, 300);
  EXPECT_DOUBLE_EQ(c.leak_growth_threshold, 0.2);
  EXPECT_EQ(c.leak_memory_threshold_mb, 100);
  EXPECT_DOUBLE_EQ(c.leak_model_growth_threshold, 1.0);
  EXPECT_FALSE(c.memory_detailed_tracking);
  EXPECT_STREQ(c.memory_header_prefix, "X-RSR-Memory");
  EXPECT_EQ(c.memory_metrics_update_interval, 300);
  EXPECT_FALSE(c.profiling_enabled);
  EXPECT_STREQ(c.profiling_output_dir, "/tmp/rsr_memory_profiles");
  EXPECT_EQ(c.max_profile_size_mb, 100);
  EXPECT_EQ(c.profiling_cleanup_days, 7);
  EXPECT_DOUBLE_EQ(c.profiling_request_probability, 0.01);
  EXPECT_TRUE(c.cache_metrics_enabled);
  EXPECT_EQ(c.cache_metrics_update_frequency, 60);
  EXPECT_EQ(c.sample_interval_bytes, 524288);
  EXPECT_EQ(c.stack_depth, 64);
  EXPECT_TRUE(c.follow_children);
  EXPECT_EQ(c.metrics_top_sites, 20);
  EXPECT_STREQ(c.socket_dir, "");  // derived at run time
  EXPECT_STREQ(c.service_name, "");
  EXPECT_STREQ(c.log_level, "warn");
}

TEST(ConfigDefaults, FormattedDefaultsMatchTheSeedsText) {
  const Config c = defaults();
  const std::map<std::string, std::string> seed = {
      {"RSR_MEMORY_MONITORING_ENABLED", "true"},
      {"RSR_PROMETHEUS_METRICS_ENABLED", "true"},
      {"RSR_LEAK_DETECTION_ENABLED", "true"},
      {"RSR_LEAK_CHECK_INTERVAL", "300"},
      {"RSR_LEAK_GROWTH_THRESHOLD", "0.2"},
      {"RSR_LEAK_MEMORY_THRESHOLD_MB", "100"},
      {"RSR_LEAK_MODEL_GROWTH_THRESHOLD", "1"},
      {"RSR_MEMORY_DETAILED_TRACKING", "false"},
      {"RSR_MEMORY_HEADER_PREFIX", "X-RSR-Memory"},
      {"RSR_MEMORY_METRICS_UPDATE_INTERVAL", "300"},
      {"RSR_PROFILING_ENABLED", "false"},
      {"RSR_PROFILING_OUTPUT_DIR", "/tmp/rsr_memory_profiles"},
      {"RSR_MAX_PROFILE_SIZE_MB", "100"},
      {"RSR_PROFILING_CLEANUP_DAYS", "7"},
      {"RSR_PROFILING_REQUEST_PROBABILITY", "0.01"},
      {"RSR_CACHE_METRICS_ENABLED", "true"},
      {"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "60"},
      {"RSR_SAMPLE_INTERVAL_BYTES", "524288"},
      {"RSR_STACK_DEPTH", "64"},
  };
  for (const auto& [env, text] : seed) {
    // Reals may be printed as "1" or "1.0"; compare numerically for those.
    const std::string got = fmt(c, env.c_str());
    char* end = nullptr;
    const double want_num = std::strtod(text.c_str(), &end);
    if (*end == '\0' && text != "true" && text != "false") {
      EXPECT_DOUBLE_EQ(std::strtod(got.c_str(), nullptr), want_num) << env << " = " << got;
    } else {
      EXPECT_EQ(got, text) << env;
    }
  }
}

TEST(ConfigDefaults, SettingsTableIsConsistent) {
  size_t n = 0;
  const rsr::SettingInfo* s = rsr::settings(&n);
  ASSERT_GE(n, 19u);
  const Config c = defaults();
  std::map<std::string, int> seen;
  for (size_t i = 0; i < n; ++i) {
    SCOPED_TRACE(s[i].env);
    EXPECT_EQ(++seen[s[i].env], 1) << "duplicate setting";
    EXPECT_EQ(std::strncmp(s[i].env, "RSR_", 4), 0);
    ASSERT_NE(s[i].help, nullptr);
    EXPECT_GT(std::strlen(s[i].help), 10u);
    ASSERT_NE(s[i].default_text, nullptr);
    // Feeding the table's default text back must be accepted silently and change nothing.
    if (s[i].default_text[0] != '\0') {
      Env e;
      e.vars[s[i].env] = s[i].default_text;
      const Config d = e.parse();
      EXPECT_TRUE(e.warnings.empty()) << "default text '" << s[i].default_text << "' rejected";
      EXPECT_TRUE(configs_equal(c, d));
    }
  }
  for (const char* env : {"RSR_LEAK_CHECK_INTERVAL", "RSR_MEMORY_HEADER_PREFIX", "RSR_SAMPLE_INTERVAL_BYTES",
                          "RSR_FOLLOW_CHILDREN", "RSR_SOCKET_DIR", "RSR_PROFILING_REQUEST_PROBABILITY"})
    EXPECT_EQ(seen.count(env), 1u) << env;
}

TEST(ConfigDefaults, UnsetEnvironmentGivesNoWarnings) {
  Env e;
  e.parse();
  EXPECT_TRUE(e.warnings.empty());
}

// ---------------------------------------------------------------------------------------------
// Valid values

TEST(ConfigParse, ValidValuesAreUsed) {
  Env e;
  e.vars = {
      {"RSR_MEMORY_MONITORING_ENABLED", "false"},
      {"RSR_LEAK_CHECK_INTERVAL", "600"},
      {"RSR_LEAK_GROWTH_THRESHOLD", "0.3"},
      {"RSR_LEAK_MEMORY_THRESHOLD_MB", "200"},
      {"RSR_LEAK_MODEL_GROWTH_THRESHOLD", "2.5"},
      {"RSR_MEMORY_DETAILED_TRACKING", "true"},
      {"RSR_MEMORY_HEADER_PREFIX", "X-Custom-Mem"},
      {"RSR_PROFILING_OUTPUT_DIR", "/var/tmp/profiles"},
      {"RSR_PROFILING_REQUEST_PROBABILITY", "1"},
      {"RSR_STACK_DEPTH", "256"},
      {"RSR_SOCKET_DIR", "/run/rsrmem-test"},
      {"RSR_SERVICE_NAME", "checkout-api"},
      {"RSR_LOG_LEVEL", "info"},
      {"RSR_ALLOWED_UIDS", "1000, 1001"},
  };
  const Config c = e.parse();
  EXPECT_TRUE(e.warnings.empty()) << e.warnings.size() << " warnings, first: " << e.warnings[0].name;
  EXPECT_FALSE(c.memory_monitoring_enabled);
  EXPECT_EQ(c.leak_check_interval, 600);
  EXPECT_DOUBLE_EQ(c.leak_growth_threshold, 0.3);
  EXPECT_EQ(c.leak_memory_threshold_mb, 200);
  EXPECT_DOUBLE_EQ(c.leak_model_growth_threshold, 2.5);
  EXPECT_TRUE(c.memory_detailed_tracking);
  EXPECT_STREQ(c.memory_header_prefix, "X-Custom-Mem");
  EXPECT_STREQ(c.profiling_output_dir, "/var/tmp/profiles");
  EXPECT_DOUBLE_EQ(c.profiling_request_probability, 1.0);
  EXPECT_EQ(c.stack_depth, 256);
  EXPECT_STREQ(c.socket_dir, "/run/rsrmem-test");
  EXPECT_STREQ(c.service_name, "checkout-api");
  EXPECT_STREQ(c.log_level, "info");
  EXPECT_STREQ(c.allowed_uids, "1000, 1001");
}

TEST(ConfigParse, TrailingCommentsAndBlanksAreIgnored) {
  Env e;
  e.vars = {
      {"RSR_LEAK_CHECK_INTERVAL", "300  # 5 minutes"},
      {"RSR_LEAK_GROWTH_THRESHOLD", "0.3  # 30% growth for production"},
      {"RSR_LEAK_MEMORY_THRESHOLD_MB", "200  # Higher threshold for production"},
      {"RSR_PROFILING_ENABLED", "false  # Disable in production"},
      {"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "60\t# 1 minute"},
      {"RSR_MEMORY_METRICS_UPDATE_INTERVAL", "  600  "},
      {"RSR_PROFILING_OUTPUT_DIR", "/srv/profiles   # where captures go"},
      {"RSR_MEMORY_HEADER_PREFIX", "X-Mem # prefix"},
  };
  const Config c = e.parse();
  EXPECT_TRUE(e.warnings.empty());
  EXPECT_EQ(c.leak_check_interval, 300);
  EXPECT_DOUBLE_EQ(c.leak_growth_threshold, 0.3);
  EXPECT_EQ(c.leak_memory_threshold_mb, 200);
  EXPECT_FALSE(c.profiling_enabled);
  EXPECT_EQ(c.cache_metrics_update_frequency, 60);
  EXPECT_EQ(c.memory_metrics_update_interval, 600);
  EXPECT_STREQ(c.profiling_output_dir, "/srv/profiles");
  EXPECT_STREQ(c.memory_header_prefix, "X-Mem");
}

TEST(ConfigParse, SizeSuffixes) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"512K", 524288}, {"512k", 524288}, {"1M", 1048576}, {"4m", 4194304},
      {"1G", 1073741824}, {"4096", 4096}, {"64K  # small", 65536}, {"1", 1},
  };
  for (const auto& [text, want] : cases) {
    Env e;
    e.vars["RSR_SAMPLE_INTERVAL_BYTES"] = text;
    const Config c = e.parse();
    EXPECT_TRUE(e.warnings.empty()) << text;
    EXPECT_EQ(c.sample_interval_bytes, want) << text;
  }
}

TEST(ConfigParse, BoolSpellings) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"true", true},  {"TRUE", true},  {"True", true},   {"1", true},  {"yes", true},
      {"YES", true},   {"on", true},    {"On", true},     {"false", false}, {"FALSE", false},
      {"False", false}, {"0", false},  {"no", false},    {"No", false}, {"off", false},
      {"OFF", false},  {" yes ", true}, {"no  # quiet", false},
  };
  for (const auto& [text, want] : cases) {
    // Test both polarities of default so a no-op parser cannot pass.
    for (const char* env : {"RSR_MEMORY_DETAILED_TRACKING", "RSR_FOLLOW_CHILDREN"}) {
      Env e;
      e.vars[env] = text;
      const Config c = e.parse();
      EXPECT_TRUE(e.warnings.empty()) << env << "=" << text;
      const bool got = std::strcmp(env, "RSR_FOLLOW_CHILDREN") == 0 ? c.follow_children
                                                                     : c.memory_detailed_tracking;
      EXPECT_EQ(got, want) << env << "=" << text;
    }
    bool b = !want;
    if (text.find_first_of(" #") == std::string::npos) {
      EXPECT_TRUE(rsr::parse_bool(text.c_str(), &b)) << text;
      EXPECT_EQ(b, want) << text;
    }
  }
  bool b = true;
  for (const char* bad : {"", "maybe", "2", "tru", "yess", "y", "n", "truefalse", "-1"})
    EXPECT_FALSE(rsr::parse_bool(bad, &b)) << bad;
}

TEST(ConfigParse, RangeLimitsAreInclusive) {
  Env e;
  e.vars = {{"RSR_STACK_DEPTH", "1"},
            {"RSR_LEAK_CHECK_INTERVAL", "86400"},
            {"RSR_PROFILING_REQUEST_PROBABILITY", "0"},
            {"RSR_LEAK_GROWTH_THRESHOLD", "1000"},
            {"RSR_PROFILING_CLEANUP_DAYS", "0"}};
  const Config c = e.parse();
  EXPECT_TRUE(e.warnings.empty());
  EXPECT_EQ(c.stack_depth, 1);
  EXPECT_EQ(c.leak_check_interval, 86400);
  EXPECT_DOUBLE_EQ(c.profiling_request_probability, 0.0);
  EXPECT_DOUBLE_EQ(c.leak_growth_threshold, 1000.0);
  EXPECT_EQ(c.profiling_cleanup_days, 0);
}

// ---------------------------------------------------------------------------------------------
// Bad values: exactly one warning naming the variable, the value and the default; default kept.

struct BadCase {
  const char* env;
  std::string value;
  const char* core;  // the part of the value the warning must show (the value minus comments)
};

void PrintTo(const BadCase& b, std::ostream* os) { *os << b.env << "='" << b.value.substr(0, 40) << "'"; }

class ConfigBadValue : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigBadValue, OneWarningAndDefaultKept) {
  const BadCase& bc = GetParam();
  const Config def = defaults();
  Env e;
  e.vars[bc.env] = bc.value;
  const Config c = e.parse();
  const std::string shown = bc.value.size() > 60 ? bc.value.substr(0, 60) + "...(" + std::to_string(bc.value.size()) + " chars)" : bc.value;
  ASSERT_EQ(e.warnings.size(), 1u) << "expected exactly one warning for " << bc.env << "='" << shown << "'";
  const Warning& w = e.warnings[0];
  EXPECT_EQ(w.name, bc.env);
  const std::string core = bc.core ? bc.core : bc.value;
  EXPECT_NE(w.value.find(core), std::string::npos) << "warning value '" << w.value.substr(0, 80) << "' does not show '" << core << "'";
  const std::string d = default_text(bc.env);
  if (!d.empty()) {
    EXPECT_EQ(w.used, d) << "the warning must say which value is used instead";
  } else {
    // Settings derived at run time have no default text; the warning must still say what is
    // used instead (e.g. "(default: the program name)"), not an empty string.
    EXPECT_FALSE(w.used.empty()) << "the warning must say what is used instead";
  }
  EXPECT_TRUE(configs_equal(c, def)) << "a bad value must leave the default in place";
}

const BadCase kBadCases[] = {
    // non-numbers and trailing garbage
    {"RSR_LEAK_CHECK_INTERVAL", "abc", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "12abc", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "1.5", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "5 minutes", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "1e3", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "abc  # 5 minutes", "abc"},
    {"RSR_LEAK_MEMORY_THRESHOLD_MB", "lots", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "2T", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "512KB", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "0x100", nullptr},
    // out of range
    {"RSR_LEAK_CHECK_INTERVAL", "0", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "-5", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "86401", nullptr},
    {"RSR_LEAK_CHECK_INTERVAL", "99999999999999999999", nullptr},
    {"RSR_STACK_DEPTH", "0", nullptr},
    {"RSR_STACK_DEPTH", "257", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "0", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "-1", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "1099511627777", nullptr},
    {"RSR_SAMPLE_INTERVAL_BYTES", "9223372036854775807K", nullptr},
    {"RSR_MAX_SITES", "63", nullptr},
    {"RSR_METRICS_TOP_SITES", "1001", nullptr},
    // reals
    {"RSR_LEAK_GROWTH_THRESHOLD", "abc", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "-0.1", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "0.2.3", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "nan", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "inf", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "1e999", nullptr},
    {"RSR_LEAK_GROWTH_THRESHOLD", "20%", nullptr},
    {"RSR_LEAK_MODEL_GROWTH_THRESHOLD", "1000.5", nullptr},
    {"RSR_PROFILING_REQUEST_PROBABILITY", "1.5", nullptr},
    {"RSR_PROFILING_REQUEST_PROBABILITY", "-0.01", nullptr},
    // garbage bools
    {"RSR_MEMORY_MONITORING_ENABLED", "maybe", nullptr},
    {"RSR_MEMORY_MONITORING_ENABLED", "2", nullptr},
    {"RSR_MEMORY_DETAILED_TRACKING", "tru", nullptr},
    {"RSR_PROFILING_ENABLED", "yes please", nullptr},
    {"RSR_FOLLOW_CHILDREN", "enabled", nullptr},
    // paths and text
    {"RSR_PROFILING_OUTPUT_DIR", "relative/dir", nullptr},
    {"RSR_PROFILING_OUTPUT_DIR", "./profiles", nullptr},
    {"RSR_PROFILING_OUTPUT_DIR", "~/profiles", nullptr},
    {"RSR_PROFILING_OUTPUT_DIR", "/tmp/" + std::string(5000, 'p'), "/tmp/pppp"},  // longer than PATH_MAX
    {"RSR_SOCKET_DIR", "sockets", nullptr},
    {"RSR_SERVICE_NAME", std::string(200, 's'), "ssss"},
    {"RSR_SERVICE_NAME", "bad\nname", "bad"},
    {"RSR_LOG_LEVEL", "debug", nullptr},
    {"RSR_ALLOWED_UIDS", "root", nullptr},
};

INSTANTIATE_TEST_SUITE_P(All, ConfigBadValue, ::testing::ValuesIn(kBadCases));

TEST(ConfigParse, SeveralBadValuesGiveOneWarningEach) {
  Env e;
  e.vars = {{"RSR_LEAK_CHECK_INTERVAL", "soon"},
            {"RSR_LEAK_GROWTH_THRESHOLD", "-1"},
            {"RSR_PROFILING_ENABLED", "perhaps"},
            {"RSR_PROFILING_OUTPUT_DIR", "profiles"},
            {"RSR_STACK_DEPTH", "64"}};  // valid: no warning
  const Config c = e.parse();
  std::map<std::string, int> count;
  for (const auto& w : e.warnings) ++count[w.name];
  EXPECT_EQ(e.warnings.size(), 4u);
  EXPECT_EQ(count["RSR_LEAK_CHECK_INTERVAL"], 1);
  EXPECT_EQ(count["RSR_LEAK_GROWTH_THRESHOLD"], 1);
  EXPECT_EQ(count["RSR_PROFILING_ENABLED"], 1);
  EXPECT_EQ(count["RSR_PROFILING_OUTPUT_DIR"], 1);
  EXPECT_TRUE(configs_equal(c, defaults()));
}

TEST(ConfigParse, NullWarnerIsAllowed) {
  Env e;
  e.vars = {{"RSR_LEAK_CHECK_INTERVAL", "soon"}, {"RSR_PROFILING_OUTPUT_DIR", "rel"}};
  Env::current = &e;
  Config c;
  rsr::parse_config(&Env::get, nullptr, nullptr, &c);
  Env::current = nullptr;
  EXPECT_EQ(c.leak_check_interval, 300);
  EXPECT_STREQ(c.profiling_output_dir, "/tmp/rsr_memory_profiles");
}

// ---------------------------------------------------------------------------------------------
// format_setting

TEST(ConfigFormat, UnknownNameIsRefused) {
  const Config c = defaults();
  char buf[64];
  EXPECT_FALSE(rsr::format_setting(c, "RSR_NO_SUCH_SETTING", buf, sizeof buf));
  EXPECT_FALSE(rsr::format_setting(c, "", buf, sizeof buf));
  EXPECT_FALSE(rsr::format_setting(c, "rsr_leak_check_interval", buf, sizeof buf));
}

TEST(ConfigFormat, NeverWritesPastTheBuffer) {
  Env e;
  e.vars["RSR_PROFILING_OUTPUT_DIR"] = "/a/very/long/path/that/does/not/fit";
  const Config c = e.parse();
  char buf[16];
  std::memset(buf, 'Z', sizeof buf);
  rsr::format_setting(c, "RSR_PROFILING_OUTPUT_DIR", buf, 8);
  EXPECT_EQ(buf[7], '\0');
  for (size_t i = 8; i < sizeof buf; ++i) EXPECT_EQ(buf[i], 'Z') << i;
}

// Every setting formatted, then parsed again, gives back the same configuration, silently.
void expect_round_trip(const Config& original) {
  size_t n = 0;
  const rsr::SettingInfo* s = rsr::settings(&n);
  Env e;
  for (size_t i = 0; i < n; ++i) e.vars[s[i].env] = fmt(original, s[i].env);
  // "derived at run time" settings format as "" when unset; an empty variable is not a value.
  for (auto it = e.vars.begin(); it != e.vars.end();)
    it = it->second.empty() ? e.vars.erase(it) : std::next(it);
  const Config again = e.parse();
  for (const auto& w : e.warnings) ADD_FAILURE() << "round trip warned: " << w.name << "='" << w.value << "'";
  EXPECT_TRUE(configs_equal(original, again));
}

TEST(ConfigFormat, DefaultsRoundTrip) { expect_round_trip(defaults()); }

TEST(ConfigFormat, NonDefaultValuesRoundTrip) {
  Env e;
  e.vars = {
      {"RSR_MEMORY_MONITORING_ENABLED", "off"},
      {"RSR_PROMETHEUS_METRICS_ENABLED", "no"},
      {"RSR_LEAK_DETECTION_ENABLED", "0"},
      {"RSR_LEAK_CHECK_INTERVAL", "17"},
      {"RSR_LEAK_GROWTH_THRESHOLD", "0.25"},
      {"RSR_LEAK_MEMORY_THRESHOLD_MB", "4096"},
      {"RSR_LEAK_MODEL_GROWTH_THRESHOLD", "3.5"},
      {"RSR_MEMORY_DETAILED_TRACKING", "yes"},
      {"RSR_MEMORY_HEADER_PREFIX", "X-Other"},
      {"RSR_MEMORY_METRICS_UPDATE_INTERVAL", "45"},
      {"RSR_PROFILING_ENABLED", "on"},
      {"RSR_PROFILING_OUTPUT_DIR", "/var/lib/rsr profiles"},
      {"RSR_MAX_PROFILE_SIZE_MB", "12"},
      {"RSR_PROFILING_CLEANUP_DAYS", "30"},
      {"RSR_PROFILING_REQUEST_PROBABILITY", "0.5"},
      {"RSR_CACHE_METRICS_ENABLED", "false"},
      {"RSR_CACHE_METRICS_UPDATE_FREQUENCY", "5"},
      {"RSR_SAMPLE_INTERVAL_BYTES", "1M"},
      {"RSR_STACK_DEPTH", "128"},
      {"RSR_SOCKET_DIR", "/run/user/1000/rsrmem"},
      {"RSR_FOLLOW_CHILDREN", "false"},
      {"RSR_SERVICE_NAME", "svc_1"},
      {"RSR_METRICS_TOP_SITES", "50"},
      {"RSR_ALLOWED_UIDS", "1000,1001"},
      {"RSR_MAX_SITES", "1024"},
      {"RSR_MAX_TRACKED_BLOCKS", "2048"},
      {"RSR_LOG_LEVEL", "error"},
  };
  const Config c = e.parse();
  ASSERT_TRUE(e.warnings.empty()) << e.warnings[0].name << "='" << e.warnings[0].value << "'";
  EXPECT_FALSE(configs_equal(c, defaults()));
  expect_round_trip(c);
}

// `rsrmemctl status` shows format_setting's text; an operator who copies it into an env file must
// get the same configuration, so reals must not lose digits.
TEST(ConfigFormat, FullPrecisionRealsRoundTrip) {
  Env e;
  e.vars = {{"RSR_LEAK_GROWTH_THRESHOLD", "0.123456789"},
            {"RSR_PROFILING_REQUEST_PROBABILITY", "0.0012345678"},
            {"RSR_LEAK_MODEL_GROWTH_THRESHOLD", "999.987654321"}};
  const Config c = e.parse();
  ASSERT_TRUE(e.warnings.empty());
  EXPECT_DOUBLE_EQ(c.profiling_request_probability, 0.0012345678);
  expect_round_trip(c);
}

}  // namespace
