// `rsrmemctl check-leaks`: runs the library's leak detection now (`check_leaks` in
// common/protocol.md) and renders what it found in the seed's words: one line per indicator,
// each call site named by the first frame of the service's own code, then recommendations that
// say which functions to review. --verbose adds each site's full stack and levels, and the
// history the judgement was made on. JSON carries the same, with `leak_indicators` and
// `recommendations` as the seed's automation expects.
//
// Exit status per process: 0 no indicators, 1 indicators found, 4 could not check (leak
// detection disabled, an older library, connection or protocol trouble). Over several
// processes: 1 when any has indicators, else the worst failure (see kCheckLeaksHelp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "../common/leak_model.h"
#include "commands.h"
#include "errors.h"
#include "format.h"
#include "site_stacks.h"
#include "symbolizer.h"

namespace rsr::ctl {
namespace {

enum class Kind { kMemoryGrowth, kSiteGrowth, kAccumulation, kHighMemory, kOther };

Kind kind_of(const std::string& type) {
  if (type == "memory_growth") return Kind::kMemoryGrowth;
  if (type == "site_growth") return Kind::kSiteGrowth;
  if (type == "accumulation") return Kind::kAccumulation;
  if (type == "high_memory") return Kind::kHighMemory;
  return Kind::kOther;
}

// Higher is worse; an unknown severity sorts last.
int severity_rank(const std::string& severity) {
  static const char* const kOrder[] = {"LOW", "MEDIUM", "HIGH", "CRITICAL"};
  for (int i = 0; i < 4; ++i)
    if (severity == kOrder[i]) return i;
  return -1;
}

// One indicator of the reply, its site symbolized and the frame to name chosen.
struct Finding {
  const Json* raw = nullptr;
  Kind kind = Kind::kOther;
  std::string type, severity;
  bool has_site = false;
  std::vector<const SymbolizedFrame*> frames;
  UserFrame culprit;
  std::string message;
};

// to/from - 1 as sent; computed when absent; nullopt when it has no value (from is 0).
std::optional<double> ratio_of(const Json& indicator) {
  const Json& r = member(indicator, "growth_ratio");
  if (r.is_number()) return r.get<double>();
  if (indicator.contains("growth_ratio")) return std::nullopt;  // null: from was 0
  const double from = num(indicator, "from_bytes");
  if (from <= 0) return std::nullopt;
  return num(indicator, "to_bytes") / from - 1.0;
}

std::string count_of(double n, const char* singular, const char* plural) {
  return human_count(n) + " " + (std::llround(n) == 1 ? singular : plural);
}

// "register_session (leaky.cc:42)": how a message names a site.
std::string site_label(const UserFrame& u) {
  return u.found ? user_frame_label(u) : "an unknown call site";
}

// "register_session (leaky.cc:42 in leaky-svc)": how a recommendation names a site, module
// included so the reader knows which binary to open.
std::string site_place(const UserFrame& u) {
  if (!u.found) return "the call site (its stack is empty)";
  const std::string where = short_location(u.file, u.line);
  std::string module = base_name(u.module);
  // An unresolved frame is already shown as "module+0xoffset".
  if (!module.empty() && u.function.rfind(module + "+", 0) == 0) module.clear();
  std::string inside = where;
  if (!module.empty()) inside += (inside.empty() ? "in " : " in ") + module;
  return inside.empty() ? u.function : u.function + " (" + inside + ")";
}

std::string bytes_arrow(const Json& indicator) {
  return human_bytes_short(num(indicator, "from_bytes")) + " -> " +
         human_bytes_short(num(indicator, "to_bytes"));
}

std::string window_of(const Json& indicator) { return human_span(num(indicator, "window_s")); }

// "3.1e-09", "0.0042"
std::string short_real(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2g", x);
  return text;
}

// The indicator's message, for one stack (a function judged across its stacks adds how many).
std::string stack_message(const Finding& f) {
  const Json& i = *f.raw;
  const std::optional<double> r = ratio_of(i);
  switch (f.kind) {
    case Kind::kMemoryGrowth:
      if (r)
        return "Memory growth detected: " + fixed(*r * 100, 1) + "% increase over " + window_of(i);
      return "Memory growth detected: live heap grew from 0 B to " +
             human_bytes_short(num(i, "to_bytes")) + " over " + window_of(i);
    case Kind::kSiteGrowth:
      if (r)
        return "Call site growth: " + site_label(f.culprit) + " live memory increased by " +
               fixed(std::round(*r * 100), 0) + "% (" + bytes_arrow(i) + ") over " + window_of(i);
      return "Call site growth: " + site_label(f.culprit) + " live memory grew from 0 B to " +
             human_bytes_short(num(i, "to_bytes")) + " over " + window_of(i);
    case Kind::kAccumulation:
      return "Memory accumulation: " + site_label(f.culprit) + " live memory keeps rising (" +
             bytes_arrow(i) + " over " + window_of(i) + ")";
    case Kind::kHighMemory:
      return "High memory usage: RSS " + human_bytes_short(num(i, "to_bytes")) + " is above the " +
             human_bytes_short(num(i, "from_bytes")) + " threshold";
    case Kind::kOther:
      break;
  }
  std::string text = "Leak indicator " + f.type;
  if (f.has_site) text += " at " + site_label(f.culprit);
  return text + ": " + bytes_arrow(i) + " over " + window_of(i);
}

std::string message_of(const Finding& f) {
  const std::string message = stack_message(f);
  if (!f.raw->contains("stacks")) return message;
  return message + " across " + std::to_string(static_cast<int>(num(*f.raw, "stacks"))) + " stacks";
}

// The newest point of the global history: the current levels.
const Json* newest_point(const Json& reply) {
  const Json& history = member(reply, "history");
  if (!history.is_array() || history.empty() || !history.back().is_object()) return nullptr;
  return &history.back();
}

bool still_growing(const Json& indicator) {
  const Json& series = member(indicator, "series");
  if (!series.is_array() || series.size() < 2) return false;
  return num(series[series.size() - 1], "live_bytes") >
         num(series[series.size() - 2], "live_bytes");
}

// What to do, most severe first, one line per function to review.
std::vector<std::string> recommendations(const std::vector<Finding>& findings, const Json& reply) {
  std::vector<std::string> out;
  std::set<std::string> seen;  // sites already named, and lines already given
  auto add = [&](const std::string& key, std::string line) {
    if (!seen.insert(key).second || !seen.insert(line).second) return;
    out.push_back(std::move(line));
  };
  const bool any_site =
      std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return f.has_site; });
  for (const Finding& f : findings) {
    const Json& i = *f.raw;
    const std::string site_key = "site:" + f.culprit.function + "|" + f.culprit.file + ":" +
                                 std::to_string(f.culprit.line) + "|" + f.culprit.module;
    switch (f.kind) {
      case Kind::kSiteGrowth: {
        const std::optional<double> r = ratio_of(i);
        add(site_key,
            "Review " + site_place(f.culprit) + ": its live memory grew " +
                (r ? fixed(std::round(*r * 100), 0) + "%"
                   : "from 0 B to " + human_bytes_short(num(i, "to_bytes"))) +
                " in " + window_of(i) + (still_growing(i) ? " and is still growing" : "") +
                " — check that entries it adds are removed, or that what it fills is bounded");
        break;
      }
      case Kind::kAccumulation:
        add(site_key, "Review " + site_place(f.culprit) + ": its live memory keeps rising (" +
                          bytes_arrow(i) + " over " + window_of(i) +
                          ") — look for a container, cache or queue it fills and never prunes");
        break;
      case Kind::kMemoryGrowth:
        if (!any_site)
          add("memory_growth",
              "Live heap grows but no single call site stands out: run `rsrmemctl "
              "memory-summary` and compare top sites over time");
        break;
      case Kind::kHighMemory: {
        const Json* now = newest_point(reply);
        const std::string heap =
            now ? human_bytes_short(num(*now, "live_bytes")) : "see `rsrmemctl memory-summary`";
        add("high_memory", "RSS is above RSR_LEAK_MEMORY_THRESHOLD_MB; compare RSS (" +
                               human_bytes_short(num(i, "to_bytes")) + ") with the live heap (" +
                               heap +
                               "): a large gap points at fragmentation or memory outside the heap");
        break;
      }
      case Kind::kOther:
        if (f.has_site)
          add(site_key, "Review " + site_place(f.culprit) + " (" + f.type + " indicator)");
        break;
    }
  }
  return out;
}

// An indicator (which must outlive the finding), its site symbolized.
Finding finding_of(const Json& i, Symbolizer& symbolizer) {
  Finding f;
  f.raw = &i;
  f.type = str(i, "type", "unknown");
  f.kind = kind_of(f.type);
  f.severity = str(i, "severity", "?");
  const Json& site = member(i, "site");
  f.has_site = site.is_object() && site.contains("frames");
  if (f.has_site) {
    f.frames = symbolize_site(site, symbolizer);
    f.culprit = first_user_frame(f.frames);
  }
  f.message = message_of(f);
  return f;
}

std::vector<Finding> findings_of(const Json& reply, Symbolizer& symbolizer) {
  std::vector<Finding> out;
  for (const Json& i : member(reply, "indicators"))
    if (i.is_object()) out.push_back(finding_of(i, symbolizer));
  return out;
}

// ---- Judged by the frame that names a site ----
//
// The library judges every stack on its own. Stacks named by the same frame (function, file,
// line, module) are judged together here as well, from the evidence of every judged site
// (`judged_sites`), with the same sign test and level: a stack that grows while another stack of
// the same function shrinks (a cache filled from one caller and refreshed from another) is passed
// over when their total holds steady, and a function whose stacks grow together is named when
// none of them is on its own.

struct Group {
  UserFrame frame;
  std::vector<const Json*> members;
  double net = 0, births = 0, deaths = 0, from = 0, to = 0;
  double p = 1;
  bool growing = false;
};

std::map<std::string, Group> groups_of(const Json& reply, Symbolizer& symbolizer) {
  std::map<std::string, Group> groups;
  for (const Json& s : member(reply, "judged_sites")) {
    if (!s.is_object()) continue;
    const UserFrame u = first_user_frame(symbolize_site(s, symbolizer));
    if (!u.found || u.fallback) continue;
    Group& g = groups[u.function + '|' + u.file + ':' + std::to_string(u.line) + '|' + u.module];
    g.frame = u;
    g.members.push_back(&s);
    g.net += num(s, "net_samples");
    g.births += num(s, "births");
    g.deaths += num(s, "durable_deaths");
    g.from += num(s, "from_bytes");
    g.to += num(s, "to_bytes");
  }
  const Json& t = member(reply, "thresholds");
  const double level = num(t, "site_level"), min_bytes = num(t, "min_site_bytes", 1 << 20);
  for (auto& [key, g] : groups) {
    const auto net = static_cast<int64_t>(g.net);
    g.p = leakmodel::sign_test_p(net, 2 * static_cast<int64_t>(g.deaths) + std::llabs(net));
    g.growing = level > 0 && g.p <= level && g.to - g.from >= min_bytes && g.to >= min_bytes;
  }
  return groups;
}

const Group* group_of(const std::map<std::string, Group>& groups, double site_id) {
  for (const auto& [key, g] : groups)
    for (const Json* m : g.members)
      if (num(*m, "id", -1) == site_id) return &g;
  return nullptr;
}

// A group the library named no stack of, as an indicator of its own (kept in `made`).
const Json& group_indicator(const Group& g, const Json& reply, std::list<Json>& made) {
  const Json& t = member(reply, "thresholds");
  const Json* biggest = g.members.front();
  for (const Json* m : g.members)
    if (num(*m, "to_bytes") > num(*biggest, "to_bytes")) biggest = m;
  const double ratio = g.from > 0 ? g.to / g.from - 1 : INFINITY;
  const bool site_growth = ratio > num(t, "site_growth", 1.0);
  const Json& history = member(reply, "history");
  const double heap = history.is_array() && !history.empty() ? num(history.back(), "live_bytes") : 0;
  const double share = heap > 0 ? g.to / heap : 0;
  const char* severity = site_growth ? (share >= 0.5 ? "CRITICAL" : share >= 0.1 ? "HIGH" : "MEDIUM")
                                     : (share >= 0.1 ? "MEDIUM" : "LOW");
  Json i = {{"type", site_growth ? "site_growth" : "accumulation"},
            {"severity", severity},
            {"window_s", num(reply, "observed_s") * 7 / 8},
            {"from_bytes", g.from},
            {"to_bytes", g.to},
            {"growth_bytes", g.to - g.from},
            {"growth_ratio", std::isfinite(ratio) ? Json(ratio) : Json(nullptr)},
            {"judged_by", "function"},
            {"stacks", g.members.size()},
            {"evidence", {{"p_value", g.p},
                          {"level", num(t, "site_level")},
                          {"net_samples", g.net},
                          {"births", g.births},
                          {"durable_deaths", g.deaths}}}};
  Json site = {{"id", num(*biggest, "id")}, {"live_bytes", num(*biggest, "to_bytes")}, {"frames", (*biggest)["frames"]}};
  i["site"] = std::move(site);
  made.push_back(std::move(i));
  return made.back();
}

bool judged_per_stack(const Finding& f) {
  return f.has_site && (f.kind == Kind::kSiteGrowth || f.kind == Kind::kAccumulation);
}

// Applies the judgement by function to `findings`: stack indicators whose function's stacks hold
// steady together are moved to `passed_over` (one line each), functions growing only together
// are added. Then sorts, most severe first.
void judge_by_function(const Json& reply, Symbolizer& symbolizer, std::vector<Finding>& findings,
                       std::vector<std::string>& passed_over, std::list<Json>& made) {
  const std::map<std::string, Group> groups = groups_of(reply, symbolizer);
  std::vector<Finding> kept;
  std::set<const Group*> named;
  for (Finding& f : findings) {
    const Group* g = judged_per_stack(f) ? group_of(groups, num(member(*f.raw, "site"), "id", -1)) : nullptr;
    if (g && g->members.size() >= 2) {
      named.insert(g);
      if (!g->growing) {
        passed_over.push_back(site_label(f.culprit) + ": its " + std::to_string(g->members.size()) +
                              " stacks together hold steady (" + human_bytes_short(g->from) + " -> " +
                              human_bytes_short(g->to) + "), one replacing another");
        continue;
      }
    }
    kept.push_back(std::move(f));
  }
  for (const auto& [key, g] : groups) {
    if (g.members.size() < 2 || !g.growing || named.count(&g)) continue;
    kept.push_back(finding_of(group_indicator(g, reply, made), symbolizer));
  }
  findings = std::move(kept);
  std::stable_sort(findings.begin(), findings.end(), [](const Finding& a, const Finding& b) {
    return severity_rank(a.severity) > severity_rank(b.severity);
  });
}

// ---- JSON ----

Json user_frame_json(const UserFrame& u) {
  return Json{{"index", u.index},
              {"function", u.function},
              {"file", u.file.empty() ? Json(nullptr) : Json(u.file)},
              {"line", u.line > 0 ? Json(u.line) : Json(nullptr)},
              {"module", u.module.empty() ? Json(nullptr) : Json(u.module)},
              {"fallback", u.fallback}};
}

Json indicator_json(const Finding& f) {
  const Json& i = *f.raw;
  Json j = Json::object();
  j["type"] = f.type;
  j["severity"] = f.severity;
  j["message"] = f.message;
  const std::optional<double> r = ratio_of(i);
  j["growth_ratio"] = r ? Json(*r) : Json(nullptr);
  j["growth_percent"] = r ? Json(std::round(*r * 1000) / 10) : Json(nullptr);
  for (const char* key : {"growth_bytes", "from_bytes", "to_bytes", "window_s"})
    j[key] = i.contains(key) ? i[key] : Json(nullptr);
  if (i.contains("rises")) j["rises"] = i["rises"];
  if (f.has_site) {
    Json site = i["site"];
    Json frames = Json::array();
    for (const SymbolizedFrame* frame : f.frames) frames.push_back(frame_json(*frame));
    site["frames"] = std::move(frames);
    if (f.culprit.found) site["user_frame"] = user_frame_json(f.culprit);
    j["site"] = std::move(site);
  }
  if (i.contains("series")) j["series"] = i["series"];
  if (judged_per_stack(f) && !i.contains("judged_by")) j["judged_by"] = "stack";
  for (auto it = i.begin(); it != i.end(); ++it)  // fields of a newer library, as sent
    if (!j.contains(it.key())) j[it.key()] = it.value();
  return j;
}

Json report_json(const Json& reply, const std::vector<Finding>& findings,
                 const std::vector<std::string>& recs, const std::vector<std::string>& passed_over,
                 const Symbolizer& symbolizer) {
  Json out = Json::object();
  for (const char* key : {"pid", "program", "service", "version"})
    if (reply.contains(key)) out[key] = reply[key];
  Json indicators = Json::array();
  for (const Finding& f : findings) indicators.push_back(indicator_json(f));
  out["leak_indicators"] = std::move(indicators);
  out["recommendations"] = recs;
  out["passed_over"] = passed_over;
  // Everything else as sent; the raw indicators and the module map are replaced by the above.
  for (auto it = reply.begin(); it != reply.end(); ++it) {
    const std::string& key = it.key();
    if (key == "ok" || key == "indicators" || key == "modules" || key == "judged_sites" || out.contains(key))
      continue;
    out[key] = it.value();
  }
  const std::vector<std::string> problems = symbolizer.problems();
  if (!problems.empty()) out["symbolization_problems"] = problems;
  return out;
}

// ---- text ----

// "4m 12s ago" relative to the newest point, which is "now". Times are whole seconds, so a
// check made within the last second shows as "0s ago".
std::string ago(double t, double reference, bool newest) {
  return newest ? "now" : human_duration(std::max(0.0, reference - t)) + " ago";
}

void indented(std::ostream& out, const std::string& block, const std::string& indent) {
  std::istringstream lines(block);
  for (std::string line; std::getline(lines, line);) out << indent << line << '\n';
}

void render_details(std::ostream& out, const Finding& f, double reference) {
  const Json& i = *f.raw;
  switch (f.kind) {
    case Kind::kMemoryGrowth:
      out << "      live heap " << human_bytes(num(i, "from_bytes")) << " -> "
          << human_bytes(num(i, "to_bytes")) << " (" << human_signed_bytes(num(i, "growth_bytes"))
          << ") over " << human_duration(num(i, "window_s")) << '\n';
      break;
    case Kind::kHighMemory:
      out << "      RSS " << human_bytes(num(i, "to_bytes")) << ", threshold "
          << human_bytes(num(i, "from_bytes")) << '\n';
      break;
    default:
      break;
  }
  if (!f.has_site) return;
  const Json& site = i["site"];
  out << "      site " << static_cast<long long>(num(site, "id")) << ": "
      << human_bytes(num(site, "live_bytes")) << " live in "
      << human_count(num(site, "live_blocks")) << " blocks, "
      << count_of(num(site, "live_samples"), "live sample", "live samples");
  if (f.culprit.found)
    out << "; named by frame #" << f.culprit.index
        << (f.culprit.fallback ? " (no frame of the service's own code)" : "");
  out << '\n';
  if (const std::string age = age_sentence(member(i, "age")); !age.empty()) out << "      age: " << age << '\n';
  if (const Json& e = member(i, "evidence"); e.contains("p_value")) {
    const double net = num(e, "net_samples");
    out << "      evidence: " << (net >= 0 ? "+" : "-") << human_count(std::fabs(net)) << " samples against "
        << human_count(num(e, "durable_deaths")) << " durable deaths (" << human_count(num(e, "births"))
        << " born) since the reference; p = " << short_real(num(e, "p_value")) << ", level "
        << short_real(num(e, "level")) << '\n';
  }
  render_frames(out, f.frames, 0);
  const Json& series = member(i, "series");
  if (series.is_array() && !series.empty()) {
    out << "      levels over the process's life (oldest first):\n";
    Table table(
        {{"when"}, {"live bytes", Table::Align::kRight}, {"samples", Table::Align::kRight}});
    for (size_t k = 0; k < series.size(); ++k)
      table.add_row({ago(num(series[k], "t"), reference, k + 1 == series.size()),
                     human_bytes(num(series[k], "live_bytes")),
                     human_count(num(series[k], "live_samples"))});
    std::ostringstream rendered;
    table.render(rendered);
    indented(out, rendered.str(), "        ");
  }
}

void render_history(std::ostream& out, const Json& reply, double reference) {
  const Json& history = member(reply, "history");
  out << "\nHistory (live heap level and RSS over the process's life, oldest first):\n";
  if (!history.is_array() || history.empty()) {
    out << "  (none yet)\n";
  } else {
    Table table({{"when"}, {"live heap", Table::Align::kRight}, {"RSS", Table::Align::kRight}});
    for (size_t k = 0; k < history.size(); ++k)
      table.add_row({ago(num(history[k], "t"), reference, k + 1 == history.size()),
                     human_bytes(num(history[k], "live_bytes")),
                     human_bytes(num(history[k], "rss_bytes"))});
    std::ostringstream rendered;
    table.render(rendered);
    indented(out, rendered.str(), "  ");
  }
  const Json& t = member(reply, "thresholds");
  out << "\nChecks every " << human_span(num(reply, "interval_s")) << " ("
      << count_of(num(reply, "checks"), "check", "checks") << " so far), probes every "
      << human_span(num(reply, "probe_s")) << ". Thresholds: heap growth "
      << fixed(num(t, "growth") * 100, 0) << "%, site growth "
      << fixed(num(t, "site_growth") * 100, 0) << "%, RSS "
      << human_bytes_short(num(t, "memory_bytes")) << ", smallest judged growth "
      << human_bytes_short(num(t, "min_site_bytes")) << ".\n";
  std::string counts;
  const Json& detected = member(reply, "detected");
  for (auto type = detected.begin(); type != detected.end(); ++type) {
    if (!type.value().is_object()) continue;
    for (auto sev = type.value().begin(); sev != type.value().end(); ++sev) {
      if (!sev.value().is_number() || sev.value().get<double>() <= 0) continue;
      counts += (counts.empty() ? "" : ", ") + type.key() + " " + sev.key() + " " +
                human_count(sev.value().get<double>());
    }
  }
  out << "Found by background checks so far: " << (counts.empty() ? "none" : counts) << ".\n";
}

std::string report_text(const Json& reply, const std::vector<Finding>& findings,
                        const std::vector<std::string>& recs,
                        const std::vector<std::string>& passed_over, Symbolizer& symbolizer,
                        bool verbose) {
  std::ostringstream out;
  out << estimates_warning(reply);
  const Json& history = member(reply, "history");
  const double reference = newest_point(reply) ? num(*newest_point(reply), "t") : 0;
  if (findings.empty()) {
    const size_t points = history.is_array() && !history.empty()
                              ? history.size()
                              : static_cast<size_t>(num(reply, "history_points"));
    const double span = history.is_array() && history.size() > 1
                            ? num(history.back(), "t") - num(history.front(), "t")
                            : 0;
    out << "No leak indicators found (judged on " << human_span(reply.contains("observed_s") ? num(reply, "observed_s") : span)
        << " of history, " << count_of(static_cast<double>(points), "point", "points") << "; "
        << count_of(num(reply, "checks"), "background check", "background checks") << " so far).\n";
  } else {
    out << "Found "
        << count_of(static_cast<double>(findings.size()), "leak indicator", "leak indicators")
        << ":\n";
    for (const Finding& f : findings) {
      out << "  [" << f.severity << "] " << f.message << '\n';
      if (verbose) render_details(out, f, reference);
    }
    if (!recs.empty()) {
      out << "\nRecommendations:\n";
      for (const std::string& r : recs) out << "  \u2022 " << r << '\n';
    }
  }
  if (!passed_over.empty()) {
    out << "\nPassed over (judged by the function as well as by the stack):\n";
    for (const std::string& p : passed_over) out << "  " << p << '\n';
  }
  if (verbose) render_history(out, reply, reference);
  const std::vector<std::string> problems = symbolizer.problems();
  if (!problems.empty()) {
    out << "\nSymbolization problems:\n";
    for (const std::string& p : problems) out << "  " << p << '\n';
  }
  return out.str();
}

Json ask(const Client& client) {
  try {
    return client.request("check_leaks");
  } catch (const CtlError& e) {
    const std::string what = e.what();
    if (e.code() == kExitConnection && what.find("unknown command") != std::string::npos)
      throw CtlError(kExitConnection,
                     what +
                         " (its librsrmem.so predates leak detection; restart the service "
                         "with the current library)");
    if (e.code() == kExitConnection && what.find("RSR_LEAK_DETECTION_ENABLED") != std::string::npos)
      throw CtlError(kExitConnection,
                     what +
                         "; restart the service with RSR_LEAK_DETECTION_ENABLED=true to use "
                         "check-leaks");
    throw;
  }
}

}  // namespace

int cmd_check_leaks(const GlobalOptions& g, const LeakOptions& options, Io io) {
  auto check = [&](const Target& target, const Client& client) {
    const Json reply = ask(client);
    const auto pid = static_cast<pid_t>(num(reply, "pid", target.pid));
    set_allocator_wrappers(str(reply, "allocator_wrappers"));
    Symbolizer symbolizer(modules_of(reply), pid > 0 ? std::optional<pid_t>(pid) : std::nullopt);
    std::vector<Finding> findings = findings_of(reply, symbolizer);
    std::vector<std::string> passed_over;
    std::list<Json> made;
    judge_by_function(reply, symbolizer, findings, passed_over, made);
    const std::vector<std::string> recs = recommendations(findings, reply);
    Outcome outcome;
    outcome.code = findings.empty() ? kExitOk : kExitNegative;
    outcome.json = report_json(reply, findings, recs, passed_over, symbolizer);
    if (g.format == OutputFormat::kText)
      outcome.text = report_text(reply, findings, recs, passed_over, symbolizer, options.verbose);
    return outcome;
  };
  const std::vector<TargetResult> results = collect(g, check);
  const int printed = print_results(g, io, results);
  // Indicators outrank failures: a sweep that found a leak says so even if a process could not
  // be checked (stderr names it).
  const bool found = std::any_of(results.begin(), results.end(), [](const TargetResult& r) {
    return r.state == TargetResult::State::kOk && r.code == kExitNegative;
  });
  return found ? kExitNegative : printed;
}

}  // namespace rsr::ctl
