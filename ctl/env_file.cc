#include "env_file.h"

#include <map>
#include <set>

#include "config.h"
#include "errors.h"
#include "regular_file.h"

namespace rsr::ctl {
namespace {

// scripts/env.template, every setting with its comment, is about 3 KiB.
constexpr size_t kMaxEnvFileBytes = 1 << 20;

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_key_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_key_char(char c) { return is_key_start(c) || (c >= '0' && c <= '9'); }

[[noreturn]] void malformed(const std::string& where, const std::string& what) {
  throw CtlError(kExitUsage, where + ": " + what);
}

// Parses a quoted value starting at text[i] (the opening quote); leaves i after the closing one.
std::string quoted_value(std::string_view text, size_t& i, const std::string& where) {
  const char quote = text[i++];
  std::string out;
  while (i < text.size() && text[i] != quote) {
    char c = text[i++];
    if (quote == '"' && c == '\\' && i < text.size()) {
      const char e = text[i++];
      switch (e) {
        case 'n':
          c = '\n';
          break;
        case 't':
          c = '\t';
          break;
        case '"':
        case '\\':
          c = e;
          break;
        default:
          out += '\\';
          c = e;  // unknown escapes are kept as written
      }
    }
    out += c;
  }
  if (i >= text.size())
    malformed(where,
              std::string("unterminated ") + (quote == '"' ? "double" : "single") + " quote");
  ++i;  // the closing quote
  return out;
}

std::string unquoted_value(std::string_view text) {
  size_t end = text.size();
  for (size_t i = 1; i < text.size(); ++i) {
    if (text[i] == '#' && is_blank(text[i - 1])) {
      end = i;
      break;
    }
  }
  while (end > 0 && is_blank(text[end - 1])) --end;
  return std::string(text.substr(0, end));
}

// parse_config takes a plain function pointer; these hand it the file's values.
thread_local const std::map<std::string, std::string>* t_values = nullptr;
const char* file_value(const char* name) {
  auto it = t_values->find(name);
  return it == t_values->end() ? nullptr : it->second.c_str();
}

struct WarnContext {
  const std::string* name;
  const std::map<std::string, int>* lines;
  std::vector<std::string>* warnings;
};

void collect_warning(const char* setting, const char* value, const char* used, void* ctx) {
  auto* w = static_cast<WarnContext*>(ctx);
  auto it = w->lines->find(setting);
  const std::string where =
      *w->name + (it != w->lines->end() ? ":" + std::to_string(it->second) : "");
  w->warnings->push_back(where + ": " + setting + "=" + value +
                         " is not a valid value; the service will use " + used);
}

void check_settings(const std::string& name, EnvFile& file) {
  size_t count = 0;
  const SettingInfo* table = settings(&count);
  std::set<std::string> known;
  for (size_t i = 0; i < count; ++i) known.insert(table[i].env);

  std::map<std::string, std::string> values;
  std::map<std::string, int> lines;
  for (const EnvEntry& e : file.entries) {
    const std::string where = name + ":" + std::to_string(e.line) + ": ";
    if (known.count(e.key)) {
      values[e.key] = e.value;
      lines[e.key] = e.line;
    } else if (e.key.rfind("RSR_", 0) == 0) {
      file.warnings.push_back(where + e.key +
                              " is not an rsrmem setting (a typo?); it is set "
                              "but nothing reads it");
    } else {
      file.warnings.push_back(where + e.key +
                              " is not an rsrmem setting; it is passed to the "
                              "command's environment as is");
    }
  }
  t_values = &values;
  WarnContext ctx{&name, &lines, &file.warnings};
  Config config;
  parse_config(file_value, collect_warning, &ctx, &config);
  t_values = nullptr;
}

}  // namespace

EnvFile parse_env_file(std::string_view text, const std::string& name) {
  EnvFile file;
  std::map<std::string, size_t> index;  // key -> position in file.entries
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = name + ":" + std::to_string(line_no);

    size_t i = 0;
    while (i < line.size() && is_blank(line[i])) ++i;
    if (i == line.size() || line[i] == '#') continue;
    if (line.substr(i, 7) == "export " || line.substr(i, 7) == "export\t") {
      i += 7;
      while (i < line.size() && is_blank(line[i])) ++i;
    }
    const size_t key_start = i;
    if (i == line.size() || !is_key_start(line[i]))
      malformed(where, "expected KEY=VALUE, found '" + std::string(line) + "'");
    while (i < line.size() && is_key_char(line[i])) ++i;
    const std::string key(line.substr(key_start, i - key_start));
    while (i < line.size() && is_blank(line[i])) ++i;
    if (i == line.size() || line[i] != '=')
      malformed(where, "expected '=' after " + key + ", found '" + std::string(line) + "'");
    ++i;
    while (i < line.size() && is_blank(line[i])) ++i;

    std::string value;
    if (i < line.size() && (line[i] == '"' || line[i] == '\'')) {
      value = quoted_value(line, i, where);
      while (i < line.size() && is_blank(line[i])) ++i;
      if (i < line.size() && line[i] != '#')
        malformed(where, "unexpected text after the closing quote of " + key + ": '" +
                             std::string(line.substr(i)) + "'");
    } else {
      value = unquoted_value(line.substr(i));
    }

    auto [it, inserted] = index.emplace(key, file.entries.size());
    if (inserted) {
      file.entries.push_back({key, value, line_no});
    } else {
      EnvEntry& earlier = file.entries[it->second];
      file.warnings.push_back(where + ": " + key + " is set again (first on line " +
                              std::to_string(earlier.line) + "); the later value is used");
      earlier.value = value;
      earlier.line = line_no;
    }
  }
  check_settings(name, file);
  return file;
}

EnvFile load_env_file(const std::string& path) {
  // Regular files only: a FIFO or a device named here would hang or never end the read.
  return parse_env_file(read_regular_file(path, kMaxEnvFileBytes, "env file"), path);
}

}  // namespace rsr::ctl
