#include "site_stacks.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

#include "commands.h"
#include "format.h"

namespace rsr::ctl {
namespace {

std::string hex(uint64_t v) {
  std::ostringstream out;
  out << "0x" << std::hex << v;
  return out.str();
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_own_frame(const SymbolizedFrame& f) {
  return base_name(f.module).rfind("librsrmem", 0) == 0;
}

// The allocation API itself (malloc, operator new, __libc_malloc, ...), not std:: code that
// calls it: what is left above the caller when the preload hooks the layer below.
bool is_allocator_frame(const SymbolizedFrame& f) {
  if (f.function.empty()) return false;
  const std::string q = qualified_name(f.function);
  return is_runtime_function(q) && q.find("::") == std::string::npos;
}

}  // namespace

std::shared_ptr<Symbolizer> ProcessSymbolizers::get(const Json& reply, pid_t pid) {
  pid = static_cast<pid_t>(num(reply, "pid", pid));
  std::string modules = member(reply, "modules").dump();
  Kept& kept = by_pid_[pid];
  if (!kept.symbolizer || kept.modules != modules) {
    kept.symbolizer = std::make_shared<Symbolizer>(
        modules_of(reply), pid > 0 ? std::optional<pid_t>(pid) : std::nullopt);
    kept.modules = std::move(modules);
  }
  return kept.symbolizer;
}

void ProcessSymbolizers::forget_gone() {
  for (auto it = by_pid_.begin(); it != by_pid_.end();)
    it = it->first > 0 && !pid_alive(it->first) ? by_pid_.erase(it) : std::next(it);
}

void ProcessSymbolizers::keep_only(const std::set<pid_t>& pids) {
  for (auto it = by_pid_.begin(); it != by_pid_.end();)
    it = pids.count(it->first) ? std::next(it) : by_pid_.erase(it);
}

uint64_t parse_address(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (!v.is_string()) return 0;
  const std::string s = v.get<std::string>();
  return std::strtoull(s.c_str(), nullptr, 16);  // accepts the "0x" prefix
}

std::vector<ModuleInfo> modules_of(const Json& reply) {
  std::vector<ModuleInfo> out;
  for (const Json& m : member(reply, "modules")) {
    if (!m.is_object()) continue;
    ModuleInfo info;
    info.path = str(m, "path");
    info.build_id = lowercase(str(m, "build_id"));
    info.base = parse_address(member(m, "base"));
    info.start = parse_address(member(m, "start"));
    info.end = parse_address(member(m, "end"));
    info.loaded = !m.contains("loaded") || !m["loaded"].is_boolean() || m["loaded"].get<bool>();
    out.push_back(std::move(info));
  }
  return out;
}

Json frame_json(const SymbolizedFrame& f) {
  Json j = Json::object();
  j["address"] = hex(f.address);
  j["function"] = f.display_name();
  j["file"] = f.file.empty() ? Json(nullptr) : Json(f.file);
  j["line"] = f.line > 0 ? Json(f.line) : Json(nullptr);
  j["module"] = f.module.empty() ? Json(nullptr) : Json(f.module);
  j["offset"] = f.module.empty() ? Json(nullptr) : Json(hex(f.module_offset));
  Json inlined = Json::array();
  for (const InlinedFrame& i : f.inlined) {
    inlined.push_back(Json{{"function", i.function},
                           {"file", i.file.empty() ? Json(nullptr) : Json(i.file)},
                           {"line", i.line > 0 ? Json(i.line) : Json(nullptr)}});
  }
  j["inlined"] = std::move(inlined);
  if (!f.note.empty()) j["note"] = f.note;
  return j;
}

std::vector<const SymbolizedFrame*> symbolize_site(const Json& site, Symbolizer& symbolizer) {
  std::vector<const SymbolizedFrame*> frames;
  for (const Json& a : member(site, "frames")) {
    const SymbolizedFrame& f = symbolizer.symbolize(parse_address(a));
    if (frames.empty() && is_own_frame(f)) continue;
    frames.push_back(&f);
  }
  return frames;
}

std::string short_location(const std::string& file, int line) {
  if (file.empty()) return "";
  return base_name(file) + (line > 0 ? ":" + std::to_string(line) : "");
}

void render_frames(std::ostream& out, const std::vector<const SymbolizedFrame*>& frames,
                   int limit) {
  const size_t shown =
      limit > 0 ? std::min(frames.size(), static_cast<size_t>(limit)) : frames.size();
  for (size_t i = 0; i < shown; ++i) {
    const SymbolizedFrame& f = *frames[i];
    out << "       #" << i << ' ' << f.display_name();
    const std::string where = short_location(f.file, f.line);
    if (!where.empty()) out << "  " << where;
    if (!f.module.empty() || !f.note.empty()) {
      out << "  (" << base_name(f.module);
      if (!f.note.empty()) out << (f.module.empty() ? "" : ", ") << f.note;
      out << ')';
    }
    out << '\n';
    // Outermost first: each line runs inside the one above it (JSON keeps innermost first).
    for (auto it = f.inlined.rbegin(); it != f.inlined.rend(); ++it) {
      const InlinedFrame& in = *it;
      out << "            inlined: " << in.function;
      const std::string in_where = short_location(in.file, in.line);
      if (!in_where.empty()) out << "  " << in_where;
      out << '\n';
    }
  }
  if (frames.empty()) out << "       (no frames)\n";
  if (shown < frames.size())
    out << "       ... " << frames.size() - shown << " more frames (--frames 0 shows all)\n";
}

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Length of the operator token that starts at `i` just after the word "operator" (and its
// spaces): "()", "[]", "<<=", "->*", "new[]", "delete", a conversion's type name, ...
size_t operator_token_length(const std::string& s, size_t i) {
  if (s.compare(i, 2, "()") == 0 || s.compare(i, 2, "[]") == 0) return 2;
  size_t j = i;
  static const std::string kPunct = "<>=!+-*/%^&|~,";
  while (j < s.size() && kPunct.find(s[j]) != std::string::npos) ++j;
  if (j > i) return j - i;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
  if (s.compare(j, 2, "[]") == 0) j += 2;
  return j - i;
}

struct Candidate {
  const std::string* function;
  const std::string* file;
  int line;
};

}  // namespace

std::string qualified_name(const std::string& demangled) {
  // "(anonymous namespace)" is a scope, not a parameter list: hide it while scanning.
  static const std::string kAnon = "(anonymous namespace)";
  std::string s = demangled;
  for (size_t at = s.find(kAnon); at != std::string::npos; at = s.find(kAnon, at + 1))
    s.replace(at, kAnon.size(), std::string(1, '\x01'));

  int angle = 0, brace = 0;
  size_t name_start = 0, end = s.size();
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool word_start = i == 0 || s[i - 1] == ':' || s[i - 1] == ' ';
    if (word_start && s.compare(i, 8, "operator") == 0 &&
        (i + 8 == s.size() ||
         !(std::isalnum(static_cast<unsigned char>(s[i + 8])) || s[i + 8] == '_'))) {
      size_t j = i + 8;
      while (j < s.size() && s[j] == ' ') ++j;
      i = j + operator_token_length(s, j) - 1;
      // "std::operator< <char>(...)": the space before an operator's template arguments does
      // not end a return type.
      size_t k = i + 1;
      while (k < s.size() && s[k] == ' ') ++k;
      if (k < s.size() && s[k] == '<') i = k - 1;
      continue;
    }
    if (c == '<')
      ++angle;
    else if (c == '>' && angle > 0)
      --angle;
    else if (c == '{')
      ++brace;
    else if (c == '}' && brace > 0)
      --brace;
    else if (angle == 0 && brace == 0 && c == ' ')
      name_start = i + 1;  // after a return type
    else if (angle == 0 && brace == 0 && c == '(') {
      end = i;
      break;
    }
  }
  std::string out = s.substr(name_start, end - name_start);
  for (size_t at = out.find('\x01'); at != std::string::npos;
       at = out.find('\x01', at + kAnon.size()))
    out.replace(at, 1, kAnon);
  return out.empty() ? demangled : out;
}

bool is_runtime_function(const std::string& q) {
  static const char* const kPrefixes[] = {"std::",   "__gnu_cxx::",  "__cxxabiv1::",   "__cxa_",
                                          "__libc_", "operator new", "operator delete"};
  for (const char* p : kPrefixes)
    if (starts_with(q, p)) return true;
  static const char* const kAllocationApi[] = {
      "malloc",         "calloc",        "realloc",  "reallocarray", "free",
      "posix_memalign", "aligned_alloc", "memalign", "valloc",       "pvalloc",
      "strdup",         "strndup",       "__strdup", "__strndup",    "wcsdup"};
  for (const char* f : kAllocationApi)
    if (q == f) return true;
  return false;
}

namespace {

// Common allocation wrappers of C and C++ code bases: redis, git and gnulib, glib, CPython,
// SQLite, nginx, APR, FFmpeg, PHP, OpenSSL.
const char* const kBuiltinWrappers[] = {
    "zmalloc*", "zcalloc*", "zrealloc*", "zstrdup", "ztrymalloc*", "ztrycalloc*", "ztryrealloc*",
    "xmalloc", "xcalloc", "xrealloc", "xzalloc", "xstrdup", "xstrndup", "xmemdup*",
    "g_malloc*", "g_try_malloc*", "g_realloc*", "g_try_realloc*", "g_strdup", "g_strndup",
    "g_memdup*", "g_slice_alloc*",
    "PyMem_Malloc", "PyMem_Calloc", "PyMem_Realloc", "PyMem_RawMalloc", "PyMem_RawCalloc",
    "PyMem_RawRealloc", "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "_PyObject_Malloc",
    "sqlite3Malloc*", "sqlite3_malloc*", "sqlite3_realloc*", "sqlite3DbMalloc*", "sqlite3DbRealloc*",
    "ngx_alloc", "ngx_calloc", "ngx_palloc*", "ngx_pnalloc", "ngx_pcalloc",
    "apr_palloc", "apr_pcalloc",
    "av_malloc*", "av_mallocz*", "av_realloc*",
    "emalloc", "_emalloc*", "ecalloc", "_ecalloc", "erealloc", "_erealloc", "safe_emalloc", "_safe_emalloc",
    "CRYPTO_malloc", "CRYPTO_zalloc", "CRYPTO_realloc",
};

std::vector<std::string>& process_wrappers() {
  static std::vector<std::string> list;
  return list;
}

bool matches(const std::string& q, const std::string& pattern) {
  if (!pattern.empty() && pattern.back() == '*') return q.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return q == pattern;
}

}  // namespace

bool is_allocator_wrapper(const std::string& q) {
  for (const char* p : kBuiltinWrappers)
    if (matches(q, p)) return true;
  for (const std::string& p : process_wrappers())
    if (matches(q, p)) return true;
  return false;
}

void set_allocator_wrappers(const std::string& list) {
  std::vector<std::string>& out = process_wrappers();
  out.clear();
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(item.substr(a, b - a + 1));
    start = end + 1;
  }
}

bool is_system_module(const std::string& path) {
  const std::string name = base_name(path);
  static const char* const kPrefixes[] = {
      "libc.so",      "libc-",    "libstdc++.so", "libgcc_s.so",   "libc++.so",
      "libc++abi.so", "ld-linux", "ld64.so",      "libpthread.so", "librsrmem",
      "libjemalloc.so", "libtcmalloc", "libmimalloc.so"};
  for (const char* p : kPrefixes)
    if (starts_with(name, p)) return true;
  return false;
}

UserFrame first_user_frame(const std::vector<const SymbolizedFrame*>& frames) {
  UserFrame u;
  if (frames.empty()) return u;
  u.found = true;
  for (size_t i = 0; i < frames.size(); ++i) {
    const SymbolizedFrame& f = *frames[i];
    if (!f.module.empty() && is_system_module(f.module)) continue;
    // Innermost first: the inlined calls, then the function they were inlined into.
    std::vector<Candidate> candidates;
    for (const InlinedFrame& in : f.inlined)
      candidates.push_back({&in.function, &in.file, in.line});
    candidates.push_back({&f.function, &f.file, f.line});
    for (const Candidate& c : candidates) {
      // A frame without a symbol, outside the system libraries, is the service's own code.
      const std::string q = c.function->empty() ? f.display_name() : qualified_name(*c.function);
      if (!c.function->empty() && (is_runtime_function(q) || is_allocator_wrapper(q))) continue;
      u.index = i;
      u.function = q;
      u.file = *c.file;
      u.line = c.line;
      u.module = f.module;
      return u;
    }
  }
  const SymbolizedFrame& f = *frames.front();
  u.fallback = true;
  u.function = f.function.empty() ? f.display_name() : qualified_name(f.function);
  u.file = f.file;
  u.line = f.line;
  u.module = f.module;
  return u;
}

std::string user_frame_label(const UserFrame& u) {
  if (!u.found) return "";
  const std::string where = short_location(u.file, u.line);
  return where.empty() ? u.function : u.function + " (" + where + ")";
}

// The symbolized stack, frames of librsrmem and of the allocation API dropped from the top.
std::vector<const SymbolizedFrame*> trimmed_stack(const std::vector<uint64_t>& addresses,
                                            Symbolizer& symbolizer) {
  std::vector<const SymbolizedFrame*> frames;
  for (uint64_t a : addresses) {
    const SymbolizedFrame& f = symbolizer.symbolize(a);
    if (frames.empty() && f.inlined.empty() &&
        (is_own_frame(f) || is_allocator_frame(f) || is_allocator_wrapper(qualified_name(f.function))))
      continue;
    frames.push_back(&f);
  }
  return frames;
}

ProfileStack profile_stack(const std::vector<const SymbolizedFrame*>& frames) {
  ProfileStack stack;
  std::vector<size_t> host_index;  // per symbolized frame: where its inlined calls begin
  for (const SymbolizedFrame* f : frames) {
    host_index.push_back(stack.frames.size());
    for (const InlinedFrame& in : f->inlined)
      stack.frames.push_back({f->address, in.function, in.file, in.line, f->module, true});
    stack.frames.push_back({f->address, f->display_name(), f->file, f->line, f->module, false});
  }
  const UserFrame u = first_user_frame(frames);
  if (!u.found) return stack;
  if (u.fallback) {
    stack.user_frame = 0;
    return stack;
  }
  const size_t begin = host_index[u.index];
  const size_t group = frames[u.index]->inlined.size() + 1;
  stack.user_frame = static_cast<int>(begin + group - 1);
  for (size_t i = begin; i < begin + group; ++i) {
    const ProfileFrame& pf = stack.frames[i];
    if (qualified_name(pf.function) == u.function && pf.line == u.line) {
      stack.user_frame = static_cast<int>(i);
      break;
    }
  }
  return stack;
}

}  // namespace rsr::ctl
