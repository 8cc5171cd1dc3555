#include "leak_support.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace lk {
namespace {

struct Function {
  uint64_t start = 0, size = 0;
  std::string name;
};

struct SymbolTable {
  std::vector<Function> functions;  // sorted by start
  std::string error;
  const Function* find(uint64_t address) const {
    auto it = std::upper_bound(functions.begin(), functions.end(), address,
                               [](uint64_t a, const Function& f) { return a < f.start; });
    if (it == functions.begin()) return nullptr;
    --it;
    return address < it->start + it->size ? &*it : nullptr;
  }
};

std::string nm_path() {
  const char* v = getenv("RSR_TEST_NM");
  return v && *v ? v : "nm";
}

SymbolTable load_symbols(const std::string& path) {
  SymbolTable t;
  const std::string cmd = nm_path() + " -C -S --defined-only '" + path + "' 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) {
    t.error = "popen " + cmd;
    return t;
  }
  char buf[8192];
  while (fgets(buf, sizeof buf, f)) {
    // "<value> <size> <type> <name>"; symbols without a size have no second column.
    std::istringstream in(buf);
    std::string value, size, type;
    if (!(in >> value >> size >> type)) continue;
    if (size.size() == 1) continue;  // no size: not a function nm can give a range for
    if (type != "t" && type != "T" && type != "W" && type != "w" && type != "i") continue;
    std::string name;
    std::getline(in, name);
    if (!name.empty() && name[0] == ' ') name.erase(0, 1);
    if (!name.empty() && name.back() == '\n') name.pop_back();
    Function fn;
    fn.start = std::strtoull(value.c_str(), nullptr, 16);
    fn.size = std::strtoull(size.c_str(), nullptr, 16);
    fn.name = name;
    if (fn.size > 0) t.functions.push_back(fn);
  }
  const int st = pclose(f);
  if (t.functions.empty()) t.error = cmd + " gave no functions (status " + std::to_string(st) + ")";
  std::sort(t.functions.begin(), t.functions.end(), [](const Function& a, const Function& b) { return a.start < b.start; });
  return t;
}

std::string real(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

const SymbolTable& symbols_of(const std::string& program) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<SymbolTable>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[program];
  if (!slot) {
    slot = std::make_unique<SymbolTable>(load_symbols(program));
    if (!slot->error.empty()) ADD_FAILURE() << "symbol table of " << program << ": " << slot->error;
  }
  return *slot;
}

uint64_t hex(const json& v) {
  if (!v.is_string()) return 0;
  return std::strtoull(v.get<std::string>().c_str(), nullptr, 16);
}

// The test program's own module in the reply: the one whose file is the program.
bool program_module(const json& reply, const std::string& program, uint64_t* base, uint64_t* start, uint64_t* end) {
  if (!reply.contains("modules") || !reply["modules"].is_array()) return false;
  const std::string want = real(program);
  for (const auto& m : reply["modules"]) {
    if (!m.is_object() || !m.contains("path") || !m["path"].is_string()) continue;
    if (real(m["path"].get<std::string>()) != want) continue;
    *base = hex(m.value("base", json()));
    *start = hex(m.value("start", json()));
    *end = hex(m.value("end", json()));
    return true;
  }
  return false;
}

}  // namespace

bool is_site_type(const std::string& type) { return type == "site_growth" || type == "accumulation"; }

std::map<std::string, std::string> base_env() {
  return {
      {"RSR_LEAK_CHECK_INTERVAL", "1"},
      {"RSR_SAMPLE_INTERVAL_BYTES", "16384"},
      {"RSR_LEAK_MIN_SITE_BYTES", std::to_string(kMinSiteBytes)},
      {"RSR_LEAK_MEMORY_THRESHOLD_MB", "1024"},
  };
}

rt::Reply check_leaks(const std::string& dir, pid_t pid, int timeout_ms) {
  return rt::query(rt::socket_path(dir, pid), R"({"cmd":"check_leaks"})", timeout_ms);
}

std::vector<std::string> site_functions(const json& reply, const json& site, const std::string& program) {
  std::vector<std::string> names;
  uint64_t base = 0, start = 0, end = 0;
  if (!site.is_object() || !site.contains("frames") || !site["frames"].is_array()) return names;
  if (!program_module(reply, program, &base, &start, &end)) return names;
  const SymbolTable& table = symbols_of(program);
  for (const auto& frame : site["frames"]) {
    const uint64_t a = hex(frame);
    if (a == 0 || a < start || a >= end) continue;
    // A return address: the call instruction is just before it.
    if (const Function* fn = table.find(a - 1 - base)) {
      if (std::find(names.begin(), names.end(), fn->name) == names.end()) names.push_back(fn->name);
    }
  }
  return names;
}

bool names_function(const json& reply, const json& indicator, const std::string& program, const std::string& function) {
  if (!indicator.is_object() || !indicator.contains("site")) return false;
  for (const auto& name : site_functions(reply, indicator["site"], program))
    if (name.find(function) != std::string::npos) return true;
  return false;
}

std::vector<std::string> schema_problems(const json& r) {
  std::vector<std::string> p;
  auto need = [&](const json& obj, const char* key, bool (json::*is)() const, const std::string& where) {
    if (!obj.is_object() || !obj.contains(key)) {
      p.push_back(where + key + " missing");
      return false;
    }
    if (!(obj[key].*is)()) {
      p.push_back(where + key + " has the wrong type: " + obj[key].dump().substr(0, 80));
      return false;
    }
    return true;
  };
  if (!r.is_object()) return {"reply is not an object"};
  if (r.value("ok", false) != true) p.push_back("ok is not true");
  if (need(r, "enabled", &json::is_boolean, "") && !r["enabled"].get<bool>()) p.push_back("enabled is false");
  need(r, "interval_s", &json::is_number, "");
  need(r, "probe_s", &json::is_number, "");
  need(r, "checks", &json::is_number_integer, "");
  need(r, "history_points", &json::is_number_integer, "");
  if (need(r, "thresholds", &json::is_object, "")) {
    for (const char* k : {"growth", "site_growth", "memory_bytes", "min_site_bytes"})
      need(r["thresholds"], k, &json::is_number, "thresholds.");
  }
  if (need(r, "history", &json::is_array, "")) {
    if (r["history"].empty()) p.push_back("history is empty (the newest point is the current levels)");
    for (const auto& h : r["history"]) {
      need(h, "t", &json::is_number, "history[].");
      need(h, "live_bytes", &json::is_number, "history[].");
      need(h, "rss_bytes", &json::is_number, "history[].");
    }
  }
  if (need(r, "detected", &json::is_object, "")) {
    for (const auto& [type, by_severity] : r["detected"].items()) {
      if (!by_severity.is_object()) p.push_back("detected." + type + " is not an object");
    }
  }
  need(r, "modules", &json::is_array, "");
  if (need(r, "indicators", &json::is_array, "")) {
    static const std::set<std::string> types = {"memory_growth", "site_growth", "accumulation", "high_memory"};
    static const std::set<std::string> severities = {"LOW", "MEDIUM", "HIGH", "CRITICAL"};
    for (const auto& ind : r["indicators"]) {
      const std::string type = ind.value("type", std::string("?"));
      const std::string where = "indicators[" + type + "].";
      if (!types.count(type)) p.push_back("unknown indicator type " + type);
      if (!severities.count(ind.value("severity", std::string("?")))) p.push_back(where + "severity " + ind.value("severity", std::string("?")));
      for (const char* k : {"window_s", "from_bytes", "to_bytes", "growth_bytes"}) need(ind, k, &json::is_number, where);
      if (!ind.contains("growth_ratio") || !(ind["growth_ratio"].is_number() || ind["growth_ratio"].is_null()))
        p.push_back(where + "growth_ratio missing or not a number/null");
      if (is_site_type(type)) {
        if (need(ind, "site", &json::is_object, where)) need(ind["site"], "frames", &json::is_array, where + "site.");
        need(ind, "series", &json::is_array, where);
        if (need(ind, "rises", &json::is_number_integer, where) && ind["rises"].get<int>() < 0)
          p.push_back(where + "rises is negative");
        if (need(ind, "evidence", &json::is_object, where)) {
          for (const char* k : {"p_value", "level", "net_samples", "births", "durable_deaths", "span_s"})
            need(ind["evidence"], k, &json::is_number, where + "evidence.");
        }
        if (need(ind, "age", &json::is_object, where)) {
          need(ind["age"], "live_samples", &json::is_number_integer, where + "age.");
          need(ind["age"], "older_than", &json::is_array, where + "age.");
          need(ind["age"], "born_by_quarter", &json::is_array, where + "age.");
          need(ind["age"], "pattern", &json::is_string, where + "age.");
        }
      }
    }
  }
  return p;
}

int64_t detected_total(const json& r, const std::string& type) {
  int64_t total = 0;
  if (!r.contains("detected") || !r["detected"].is_object()) return 0;
  for (const auto& [t, by_severity] : r["detected"].items()) {
    if (!type.empty() && t != type) continue;
    if (!by_severity.is_object()) continue;
    for (const auto& [sev, n] : by_severity.items())
      if (n.is_number_integer()) total += n.get<int64_t>();
  }
  return total;
}

std::string describe_indicators(const json& r, const std::string& program) {
  std::ostringstream o;
  if (!r.contains("indicators") || !r["indicators"].is_array()) return "(no indicators array)";
  for (const auto& ind : r["indicators"]) {
    o << ind.value("type", std::string("?")) << " " << ind.value("severity", std::string("?"));
    if (ind.contains("site")) {
      o << " [";
      bool first = true;
      for (const auto& n : site_functions(r, ind["site"], program)) {
        o << (first ? "" : " | ") << n.substr(0, 70);
        first = false;
      }
      o << "]";
    }
    o << " from=" << ind.value("from_bytes", json()).dump() << " to=" << ind.value("to_bytes", json()).dump()
      << " ratio=" << ind.value("growth_ratio", json()).dump() << "; ";
  }
  return o.str();
}

std::string describe_sites(const std::string& dir, pid_t pid, const std::string& program, int top) {
  const rt::Reply r = rt::summary(dir, pid, top);
  if (!r.served()) return "summary not served: " + r.describe().substr(0, 300) + "\n";
  std::ostringstream o;
  o << "summary of pid " << pid << ": heap live " << r.json.value("heap", json::object()).value("live_bytes", json()).dump() << ", sampling "
    << r.json.value("sampling", json()).dump() << "\n";
  for (const auto& site : r.json.value("top_live", json::array())) {
    o << "  site " << site.value("id", json()).dump() << " live_bytes=" << site.value("live_bytes", json()).dump()
      << " live_samples=" << site.value("live_samples", json()).dump() << " [";
    bool first = true;
    for (const auto& n : site_functions(r.json, site, program)) {
      o << (first ? "" : " | ") << n.substr(0, 60);
      first = false;
    }
    o << "]\n";
  }
  return o.str();
}

void PollTrace::add(double t_s, const json& reply, const std::string& program) {
  char head[96];
  snprintf(head, sizeof head, "t=%6.2fs checks=%lld ", t_s, static_cast<long long>(checks_of(reply)));
  std::string line = head;
  const auto& inds = reply.value("indicators", json::array());
  line += inds.empty() ? std::string("no indicators") : describe_indicators(reply, program);
  if (reply.contains("history") && reply["history"].is_array() && !reply["history"].empty())
    line += " live=" + reply["history"].back().value("live_bytes", json()).dump();
  if (lines_.size() >= 400) {
    ++dropped_;
    return;
  }
  lines_.push_back(line);
}

void PollTrace::note(double t_s, const std::string& text) {
  char head[32];
  snprintf(head, sizeof head, "t=%6.2fs ", t_s);
  lines_.push_back(head + text);
}

std::string PollTrace::str() const {
  std::string s;
  for (const auto& l : lines_) s += "  " + l.substr(0, 600) + "\n";
  if (dropped_) s += "  (" + std::to_string(dropped_) + " more polls not shown)\n";
  return s;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int64_t checks_of(const json& r) {
  return r.is_object() && r.contains("checks") && r["checks"].is_number_integer() ? r["checks"].get<int64_t>() : -1;
}

bool alive(pid_t pid) {
  const std::string stat = rt::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  const char state = stat[close + 2];
  return state != 'Z' && state != 'X';
}

int64_t rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return 0;
}

}  // namespace lk
