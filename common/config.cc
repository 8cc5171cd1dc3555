#include "config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace rsr {
namespace {

#define RSR_KIND_Bool SettingKind::kBool
#define RSR_KIND_Int SettingKind::kInt
#define RSR_KIND_Real SettingKind::kReal
#define RSR_KIND_Str SettingKind::kStr
#define RSR_KIND_Path SettingKind::kPath
#define RSR_STRINGIFY_Bool(def) ((def) ? "true" : "false")
#define RSR_STRINGIFY_Int(def) #def
#define RSR_STRINGIFY_Real(def) #def
#define RSR_STRINGIFY_Str(def) def
#define RSR_STRINGIFY_Path(def) def
#define RSR_ROW(kind, f, env, def, lo, hi, help) {RSR_KIND_##kind, env, RSR_STRINGIFY_##kind(def), help},
constexpr SettingInfo kSettings[] = {RSR_SETTINGS(RSR_ROW)};
#undef RSR_ROW

void copy_text(char* dst, size_t cap, const char* src) {
  size_t n = std::strlen(src);
  if (n >= cap) n = cap - 1;
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

bool parse_int(const char* text, int64_t lo, int64_t hi, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text) return false;
  // Accept a K/M/G suffix (powers of 1024) for byte-sized settings such as the sample interval.
  long long mult = 1;
  if (*end == 'K' || *end == 'k') mult = 1024LL, ++end;
  else if (*end == 'M' || *end == 'm') mult = 1024LL * 1024, ++end;
  else if (*end == 'G' || *end == 'g') mult = 1024LL * 1024 * 1024, ++end;
  while (*end == ' ' || *end == '\t') ++end;
  if (*end != '\0') return false;
  if (v > hi / mult || v < lo / mult) return false;
  const long long scaled = v * mult;
  if (scaled < lo || scaled > hi) return false;
  *out = scaled;
  return true;
}

bool parse_real(const char* text, double lo, double hi, double* out) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text) return false;
  while (*end == ' ' || *end == '\t') ++end;
  if (*end != '\0' || !std::isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_text(const char* text, size_t cap, char* out) {
  const size_t n = std::strlen(text);
  if (n >= cap) return false;
  for (size_t i = 0; i < n; ++i)
    if (static_cast<unsigned char>(text[i]) < 0x20) return false;
  std::memcpy(out, text, n + 1);
  return true;
}

// Strips a trailing "# comment" and surrounding blanks, as env files and the seed's examples
// write them ("RSR_LEAK_CHECK_INTERVAL=300  # 5 minutes").
const char* clean(const char* raw, char* buf, size_t cap) {
  copy_text(buf, cap, raw);
  char* hash = std::strstr(buf, " #");
  if (!hash) hash = std::strstr(buf, "\t#");
  if (hash) *hash = '\0';
  size_t n = std::strlen(buf);
  while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) buf[--n] = '\0';
  char* start = buf;
  while (*start == ' ' || *start == '\t') ++start;
  return start;
}

// What a warning says is used instead of a bad value.
const char* used_instead(const char* default_text) {
  return default_text[0] ? default_text : "the default derived at run time";
}

// Shortest text that reads back as exactly `v`.
void format_real(double v, char* buf, size_t cap) {
  for (int precision = 6; precision <= 17; ++precision) {
    snprintf(buf, cap, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) return;
  }
}

}  // namespace

const SettingInfo* settings(size_t* count) {
  *count = sizeof kSettings / sizeof kSettings[0];
  return kSettings;
}

bool parse_bool(const char* text, bool* out) {
  static const char* const kTrue[] = {"true", "1", "yes", "on"};
  static const char* const kFalse[] = {"false", "0", "no", "off"};
  for (const char* t : kTrue)
    if (strcasecmp(text, t) == 0) return *out = true, true;
  for (const char* f : kFalse)
    if (strcasecmp(text, f) == 0) return *out = false, true;
  return false;
}

void parse_config(EnvGetter get, Warner warn, void* ctx, Config* c) {
  char buf[kPathMax];
#define RSR_DEFAULT_Bool(f, def) c->f = (def);
#define RSR_DEFAULT_Int(f, def) c->f = (def);
#define RSR_DEFAULT_Real(f, def) c->f = (def);
#define RSR_DEFAULT_Str(f, def) copy_text(c->f, kNameMax, def);
#define RSR_DEFAULT_Path(f, def) \
  if ((def)[0] != '\0' || c->f[0] != '\0') copy_text(c->f, kPathMax, def);  // an untouched page stays so
#define RSR_PARSE_Bool(f, lo, hi, v) parse_bool(v, &c->f)
#define RSR_PARSE_Int(f, lo, hi, v) parse_int(v, lo, hi, &c->f)
#define RSR_PARSE_Real(f, lo, hi, v) parse_real(v, lo, hi, &c->f)
#define RSR_PARSE_Str(f, lo, hi, v) parse_text(v, kNameMax, c->f)
#define RSR_PARSE_Path(f, lo, hi, v) parse_text(v, kPathMax, c->f)
#define RSR_APPLY(kind, f, env, def, lo, hi, help)                                  \
  RSR_DEFAULT_##kind(f, def);                                                       \
  if (const char* raw = get(env); raw != nullptr) {                                 \
    const bool fits = std::strlen(raw) < sizeof buf;                                \
    const char* v = clean(raw, buf, sizeof buf);                                    \
    if (!fits || !RSR_PARSE_##kind(f, lo, hi, v)) {                                 \
      RSR_DEFAULT_##kind(f, def);                                                   \
      if (warn) warn(env, raw, used_instead(RSR_STRINGIFY_##kind(def)), ctx);       \
    }                                                                               \
  }
  RSR_SETTINGS(RSR_APPLY)
#undef RSR_APPLY

  // Cross-setting checks.
  if (std::strcmp(c->log_level, "error") != 0 && std::strcmp(c->log_level, "warn") != 0 &&
      std::strcmp(c->log_level, "info") != 0) {
    if (warn) warn("RSR_LOG_LEVEL", c->log_level, "warn", ctx);
    copy_text(c->log_level, kNameMax, "warn");
  }
  for (const char* p = c->allowed_uids; *p; ++p) {
    if ((*p < '0' || *p > '9') && *p != ',' && *p != ' ') {
      if (warn) warn("RSR_ALLOWED_UIDS", c->allowed_uids, "(none)", ctx);
      c->allowed_uids[0] = '\0';
      break;
    }
  }
  if (c->socket_dir[0] != '\0' && c->socket_dir[0] != '/') {
    if (warn) warn("RSR_SOCKET_DIR", c->socket_dir, "(default: an absolute path is required)", ctx);
    c->socket_dir[0] = '\0';
  }
  if (c->profiling_output_dir[0] != '/') {
    if (warn)
      warn("RSR_PROFILING_OUTPUT_DIR", c->profiling_output_dir, "/tmp/rsr_memory_profiles", ctx);
    copy_text(c->profiling_output_dir, kPathMax, "/tmp/rsr_memory_profiles");
  }
}

void socket_dir_for(const char* configured, const char* xdg, unsigned uid, char* out, size_t cap) {
  if (configured && configured[0] == '/') snprintf(out, cap, "%s", configured);
  else if (xdg && xdg[0] == '/') snprintf(out, cap, "%s/rsrmem", xdg);
  else snprintf(out, cap, "/tmp/rsrmem-%u", uid);
  for (size_t n = std::strlen(out); n > 1 && out[n - 1] == '/'; --n) out[n - 1] = '\0';
  // "x//rsrmem" when XDG_RUNTIME_DIR ends in a slash
  if (char* dup = std::strstr(out, "//rsrmem")) std::memmove(dup, dup + 1, std::strlen(dup + 1) + 1);
}

bool format_setting(const Config& c, const char* env, char* buf, size_t cap) {
#define RSR_FORMAT_Bool(f) snprintf(buf, cap, "%s", c.f ? "true" : "false")
#define RSR_FORMAT_Int(f) snprintf(buf, cap, "%lld", static_cast<long long>(c.f))
#define RSR_FORMAT_Real(f) format_real(c.f, buf, cap)
#define RSR_FORMAT_Str(f) snprintf(buf, cap, "%s", c.f)
#define RSR_FORMAT_Path(f) snprintf(buf, cap, "%s", c.f)
#define RSR_MATCH(kind, f, name, def, lo, hi, help) \
  if (std::strcmp(env, name) == 0) {                \
    RSR_FORMAT_##kind(f);                           \
    return true;                                    \
  }
  RSR_SETTINGS(RSR_MATCH)
#undef RSR_MATCH
  return false;
}

}  // namespace rsr
