// `rsrmemctl list`: every monitored process of this user (or the one targeted), one row each.
#include <algorithm>

#include "commands.h"
#include "errors.h"
#include "format.h"

namespace rsr::ctl {
namespace {

std::string command_of(const Json& hello) {
  std::string out;
  const Json& cmdline = member(hello, "cmdline");
  if (cmdline.is_array()) {
    for (const Json& arg : cmdline) {
      if (!arg.is_string()) continue;
      if (!out.empty()) out += ' ';
      out += arg.get<std::string>();
    }
  }
  return out.empty() ? str(hello, "program", "?") : out;
}

// One row's data: identity from hello, figures from a summary without sites.
Outcome probe(const Target& target, const Client& client) {
  const Json hello = client.request("hello");
  Json row = Json::object();
  row["pid"] = static_cast<long long>(num(hello, "pid", target.pid));
  row["state"] = "live";
  row["service"] = str(hello, "service");
  row["program"] = str(hello, "program");
  row["command"] = command_of(hello);
  row["mode"] = str(hello, "mode");
  row["uptime_s"] = hello.contains("uptime_s") ? hello["uptime_s"] : Json(nullptr);
  row["socket"] = target.socket;
  const Json summary = client.request(Json{{"cmd", "summary"}, {"top", 0}});
  const Json& heap = member(summary, "heap");
  // Copied as sent, so integers stay integers in the JSON output.
  auto copy = [&row](const char* key, const Json& from) {
    if (from.contains(key)) row[key] = from[key];
  };
  copy("live_bytes", heap);
  copy("live_blocks", heap);
  copy("rss_bytes", summary);
  copy("peak_rss_bytes", summary);
  copy("uptime_s", summary);
  return Outcome{kExitOk, row, ""};
}

}  // namespace

int cmd_list(const GlobalOptions& g, Io io) {
  const std::vector<TargetResult> results = collect(g, probe, /*all_by_default=*/true);
  int code = kExitOk;
  for (const TargetResult& r : results) code = std::max(code, r.code);

  if (g.format == OutputFormat::kJson) {
    Json rows = Json::array();
    for (const TargetResult& r : results) {
      if (r.state == TargetResult::State::kOk) {
        rows.push_back(r.outcome.json);
        continue;
      }
      const bool gone = r.state == TargetResult::State::kGone;
      rows.push_back(Json{{"pid", r.target.pid},
                          {"state", gone ? "gone" : "error"},
                          {"socket", r.target.socket},
                          {"error", r.message}});
      if (!gone) io.err << "rsrmemctl: " << r.message << '\n';
    }
    io.out << rows.dump(2) << '\n';
    return code;
  }

  if (results.empty()) {
    io.out << "No monitored processes (socket directory " << g.target.dir << ").\n";
    return code;
  }
  Table table({{"PID", Table::Align::kRight},
               {"UPTIME", Table::Align::kRight},
               {"HEAP", Table::Align::kRight},
               {"RSS", Table::Align::kRight},
               {"MODE", Table::Align::kLeft},
               {"COMMAND", Table::Align::kLeft}});
  std::vector<std::string> notes;
  for (const TargetResult& r : results) {
    if (r.state == TargetResult::State::kOk) {
      const Json& row = r.outcome.json;
      table.add_row({std::to_string(row["pid"].get<long long>()),
                     human_duration(num(row, "uptime_s")), human_bytes(num(row, "live_bytes")),
                     human_bytes(num(row, "rss_bytes")),
                     str(row, "mode").empty() ? "-" : str(row, "mode"), str(row, "command")});
    } else if (r.state == TargetResult::State::kGone) {
      notes.push_back(r.message);
    } else {
      table.add_row({std::to_string(r.target.pid), "?", "?", "?", "?", "(no answer, see below)"});
      io.err << "rsrmemctl: " << r.message << '\n';
    }
  }
  const bool any_row = std::any_of(results.begin(), results.end(), [](const TargetResult& r) {
    return r.state != TargetResult::State::kGone;
  });
  if (any_row)
    table.render(io.out);
  else
    io.out << "No live monitored processes (socket directory " << g.target.dir << ").\n";
  for (const std::string& n : notes) io.out << n << '\n';
  return code;
}

}  // namespace rsr::ctl
