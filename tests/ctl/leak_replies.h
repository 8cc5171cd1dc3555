// `check_leaks` replies as librsrmem.so sends them (common/protocol.md), for tests that run
// check-leaks against a FakeServer. Sites carry real return addresses of this process (the
// std:: allocation stacks of leak_fixture.h) and the reply carries their module map, so
// rsrmemctl symbolizes them as it would a service's.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "client.h"
#include "fake_server.h"
#include "leak_fixture.h"
#include "module_map.h"

namespace rsrtest::leaks {

using Json = rsr::ctl::Json;

constexpr double kNow = 1700000000;  // the newest point of every history

inline double mib(double n) { return static_cast<double>(static_cast<long long>(n * 1048576)); }

inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

inline Json common_fields(pid_t pid) {
  return Json{{"ok", true},       {"pid", pid},         {"program", "/usr/bin/svc"},
              {"service", "svc"}, {"version", "0.1.0"}, {"protocol", 1}};
}

// Answers by command name from a table of replies; anything else is refused as unknown.
inline FakeServer::Handler answers(std::map<std::string, Json> by_cmd) {
  return [by_cmd = std::move(by_cmd)](const std::string& request) {
    const std::string cmd = Json::parse(request).value("cmd", "");
    auto it = by_cmd.find(cmd);
    if (it == by_cmd.end())
      return frame(rsr::proto::Kind::kError,
                   R"({"ok":false,"error":"unknown command \")" + cmd + "\\\"\"}");
    return reply(it->second.dump());
  };
}

// What a library with RSR_LEAK_DETECTION_ENABLED=false answers to check_leaks.
inline std::string disabled_refusal() {
  return frame(
      rsr::proto::Kind::kError,
      R"j({"ok":false,"error":"leak detection is disabled (RSR_LEAK_DETECTION_ENABLED=false)"})j");
}

// A return address inside libstdc++'s operator new: what heads a stack whose allocation went
// through it.
inline uint64_t in_operator_new() {
  return reinterpret_cast<uint64_t>(static_cast<void* (*)(std::size_t)>(&::operator new)) + 1;
}

// Site frames: operator new, std:: frames at -O0, then rsrtest::register_session.
inline std::vector<uint64_t> o0_site() {
  std::vector<uint64_t> stack = o0_allocation_stack();
  stack.insert(stack.begin(), in_operator_new());
  return stack;
}
// Site frames: rsrtest::store_session with std::vector code inlined into it.
inline std::vector<uint64_t> o2_site() { return o2_allocation_stack(); }

inline Json site_json(const std::vector<uint64_t>& frames, double live_bytes) {
  Json addresses = Json::array();
  for (uint64_t a : frames) addresses.push_back(hex(a));
  return Json{{"id", 7},
              {"live_bytes", live_bytes},
              {"live_blocks", 700},
              {"alloc_bytes", live_bytes * 2},
              {"alloc_blocks", 1400},
              {"samples", 40},
              {"live_samples", 27},
              {"growth_bytes", live_bytes / 2},
              {"growth_bytes_per_s", 1000},
              {"frames", addresses}};
}

// Three levels, oldest first, ending now: from, halfway, to.
inline Json series(double from, double to, double window_s) {
  return Json::array(
      {{{"t", kNow - window_s}, {"live_bytes", from}, {"live_samples", 11}},
       {{"t", kNow - window_s / 2}, {"live_bytes", (from + to) / 2}, {"live_samples", 19}},
       {{"t", kNow}, {"live_bytes", to}, {"live_samples", 27}}});
}

inline Json indicator(const char* type, const char* severity, double from, double to,
                      double window_s) {
  return Json{{"type", type},
              {"severity", severity},
              {"window_s", window_s},
              {"from_bytes", from},
              {"to_bytes", to},
              {"growth_bytes", to - from},
              {"growth_ratio", from > 0 ? Json(to / from - 1) : Json(nullptr)}};
}

inline Json memory_growth(const char* severity, double from, double to, double window_s) {
  return indicator("memory_growth", severity, from, to, window_s);
}

inline Json site_growth(const char* severity, double from, double to, double window_s,
                        const std::vector<uint64_t>& frames) {
  Json i = indicator("site_growth", severity, from, to, window_s);
  i["rises"] = 0;
  i["site"] = site_json(frames, to);
  i["series"] = series(from, to, window_s);
  // 27 live samples: 26 older than a minute, 25 older than ten, born in every quarter.
  i["age"] = {{"live_samples", 27},
              {"older_than", Json::array({Json{{"s", 10}, {"samples", 27}}, Json{{"s", 60}, {"samples", 26}},
                                          Json{{"s", 600}, {"samples", 25}}, Json{{"s", 3600}, {"samples", 0}}})},
              {"born_by_quarter", Json::array({6, 7, 7, 7})},
              {"pattern", "steady"}};
  i["evidence"] = {{"p_value", 3.2e-9}, {"level", 0.0025}, {"net_samples", 16}, {"births", 18},
                   {"durable_deaths", 2}, {"span_s", 15}};
  return i;
}

inline Json accumulation(const char* severity, double from, double to, double window_s, int rises,
                         const std::vector<uint64_t>& frames) {
  Json i = indicator("accumulation", severity, from, to, window_s);
  i["rises"] = rises;
  i["site"] = site_json(frames, to);
  i["series"] = series(from, to, window_s);
  return i;
}

inline Json high_memory(const char* severity, double threshold, double rss) {
  Json i = indicator("high_memory", severity, threshold, rss, 0);
  return i;
}

// A full reply: four checks every 5 minutes (live heap 40 -> 50 MiB, RSS 80 -> 95 MiB), the
// library's default thresholds, and the module map of every site's frames.
// An entry of `judged_sites`: a judged site's evidence and frames.
inline Json judged_site(int id, const std::vector<uint64_t>& frames, double from, double to, double net,
                        double durable_deaths) {
  Json addresses = Json::array();
  for (uint64_t a : frames) addresses.push_back(hex(a));
  return Json{{"id", id},           {"from_bytes", from},
              {"to_bytes", to},     {"net_samples", net},
              {"births", net > 0 ? net + durable_deaths : durable_deaths},
              {"durable_deaths", durable_deaths},
              {"growing", false},   {"frames", addresses}};
}

inline Json leaks_reply(pid_t pid, const std::vector<Json>& indicators, const std::vector<Json>& judged = {}) {
  Json r = common_fields(pid);
  r["enabled"] = true;
  r["interval_s"] = 300;
  r["probe_s"] = 15;
  r["checks"] = 4;
  r["history_points"] = 4;
  r["tracked_sites"] = 3;
  r["untracked_sites"] = 0;
  r["thresholds"] = Json{{"growth", 0.2},
                         {"site_growth", 1.0},
                         {"memory_bytes", 100 * 1048576},
                         {"min_site_bytes", 1048576},
                         {"alpha", 0.01},
                         {"site_level", 0.0025}};
  r["observed_s"] = 900;
  Json history = Json::array();
  const double live[] = {40, 43, 46, 50}, rss[] = {80, 85, 90, 95};
  for (int k = 0; k < 4; ++k)
    history.push_back(
        {{"t", kNow - 300 * (3 - k)}, {"live_bytes", mib(live[k])}, {"rss_bytes", mib(rss[k])}});
  r["history"] = history;
  Json detected = Json::object();
  for (const char* type : {"memory_growth", "site_growth", "accumulation", "high_memory"})
    detected[type] = Json{{"LOW", 0}, {"MEDIUM", 0}, {"HIGH", 0}, {"CRITICAL", 0}};
  detected["site_growth"]["MEDIUM"] = 2;
  r["detected"] = detected;
  r["indicators"] = indicators;
  r["judged_sites"] = judged;

  std::map<std::string, rsr::ctl::ModuleInfo> modules;
  std::vector<const Json*> stacks;
  for (const Json& i : indicators)
    if (i.contains("site")) stacks.push_back(&i["site"]["frames"]);
  for (const Json& j : judged) stacks.push_back(&j["frames"]);
  for (const Json* frames : stacks) {
    for (const Json& a : *frames) {
      const uint64_t address = std::stoull(a.get<std::string>(), nullptr, 16);
      const rsr::ctl::ModuleInfo m = module_of(reinterpret_cast<const void*>(address));
      if (!m.path.empty()) modules[m.path] = m;
    }
  }
  Json mods = Json::array();
  for (const auto& [path, m] : modules)
    mods.push_back(Json{{"path", m.path},
                        {"build_id", m.build_id},
                        {"base", hex(m.base)},
                        {"start", hex(m.start)},
                        {"end", hex(m.end)},
                        {"loaded", true}});
  r["modules"] = mods;
  return r;
}

}  // namespace rsrtest::leaks
