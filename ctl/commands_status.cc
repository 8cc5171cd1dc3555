// The process-state family: `status`, `health-check` and `update-metrics`.
#include <ctime>
#include <set>
#include <sstream>

#include "commands.h"
#include "config.h"
#include "errors.h"
#include "format.h"

namespace rsr::ctl {
namespace {

std::string local_time(double unix_seconds) {
  if (unix_seconds <= 0) return "?";
  const time_t t = static_cast<time_t>(unix_seconds);
  tm local{};
  localtime_r(&t, &local);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &local);
  return buf;
}

std::string joined_cmdline(const Json& reply) {
  std::string out;
  for (const Json& arg : member(reply, "cmdline")) {
    if (!arg.is_string()) continue;
    if (!out.empty()) out += ' ';
    out += arg.get<std::string>();
  }
  return out;
}

// Two-column "  label   value" lines with the labels padded to one width.
class Fields {
 public:
  explicit Fields(std::ostream& out, size_t width = 16) : out_(out), width_(width) {}
  void add(const std::string& label, const std::string& value) {
    out_ << "  " << label << std::string(label.size() < width_ ? width_ - label.size() : 1, ' ')
         << value << '\n';
  }

 private:
  std::ostream& out_;
  size_t width_;
};

std::string value_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void render_sampling(std::ostream& out, const Json& s) {
  out << "\nSampling\n";
  Fields f(out);
  const std::string mode = str(s, "mode", "?");
  f.add("mode", mode);
  const double interval = num(s, "interval_bytes");
  f.add("interval", mode == "detailed" || interval <= 0
                        ? "every allocation"
                        : human_bytes(interval) + " mean between samples");
  f.add("stack depth", human_count(num(s, "stack_depth")) + " frames");
  f.add("samples", human_count(num(s, "samples")));
  f.add("tracked blocks",
        human_count(num(s, "tracked_blocks")) + " of " + human_count(num(s, "max_tracked_blocks")));
  f.add("call sites", human_count(num(s, "sites")) + " of " + human_count(num(s, "max_sites")));
  f.add("dropped", human_count(num(s, "dropped_samples")) + " samples (block table full), " +
                       human_count(num(s, "dropped_sites")) + " without a site (site table full)");
  if (const double unattributed = num(s, "unattributed_live_bytes"); unattributed > 0)
    f.add("unattributed", human_bytes(unattributed) + " live");
  const Json& estimates = member(s, "estimates");
  if (estimates.is_object()) {
    const std::string state = str(estimates, "status", "?");
    f.add("estimates", state == "ok" ? state : state + ": " + str(estimates, "detail"));
  }
}

void render_config(std::ostream& out, const Json& config) {
  if (!config.is_object() || config.empty()) return;
  out << "\nConfiguration\n";
  size_t width = 0;
  for (auto it = config.begin(); it != config.end(); ++it) width = std::max(width, it.key().size());
  Fields f(out, width + 2);
  // The settings table's order groups related settings; anything newer follows as sent.
  size_t count = 0;
  const SettingInfo* table = settings(&count);
  std::set<std::string> shown;
  for (size_t i = 0; i < count; ++i) {
    auto it = config.find(table[i].env);
    if (it == config.end()) continue;
    f.add(table[i].env, value_text(*it));
    shown.insert(table[i].env);
  }
  for (auto it = config.begin(); it != config.end(); ++it)
    if (!shown.count(it.key())) f.add(it.key(), value_text(it.value()));
}

Outcome status_of(const Target& target, const Client& client) {
  const Json reply = client.request("status");
  std::ostringstream out;
  out << "Process " << process_label(reply, target.pid) << '\n';
  {
    Fields f(out);
    f.add("program", str(reply, "program", "?"));
    const std::string cmdline = joined_cmdline(reply);
    if (!cmdline.empty()) f.add("command", cmdline);
    f.add("service", str(reply, "service", "?"));
    f.add("library", "rsrmem " + str(reply, "version", "?") + " (protocol " +
                         human_count(num(reply, "protocol")) + ")");
    f.add("started", local_time(num(reply, "start_time")) + " (up " +
                         human_duration(num(reply, "uptime_s")) + ")");
    f.add("mode", str(reply, "mode", "?"));
    const Json& tracking = member(reply, "tracking");
    if (tracking.is_object()) {
      const std::string state = str(tracking, "status", "?");
      f.add("tracking", state == "ok" ? state : state + ": " + str(tracking, "detail"));
    }
    f.add("socket", str(reply, "socket", target.socket));
    if (reply.contains("threads")) f.add("threads", human_count(num(reply, "threads")));
  }

  render_sampling(out, member(reply, "sampling"));

  const Json& tracker = member(reply, "tracker");
  out << "\nTracker overhead\n";
  {
    Fields f(out);
    f.add("total", human_bytes(num(tracker, "bytes")));
    f.add("private heap", human_bytes(num(tracker, "heap_bytes")));
    f.add("tables", human_bytes(num(tracker, "tables_bytes")));
  }

  out << "\nProfilers\n";
  const Json& profilers = member(reply, "profilers");
  if (!profilers.is_array() || profilers.empty()) {
    out << "  none active\n";
  } else {
    for (const Json& p : profilers) {
      std::string line;
      if (p.is_object()) {
        for (auto it = p.begin(); it != p.end(); ++it)
          line += (line.empty() ? "" : "  ") + it.key() + "=" + value_text(it.value());
      } else {
        line = value_text(p);
      }
      out << "  " << line << '\n';
    }
  }

  render_config(out, member(reply, "config"));
  const Json& warnings = member(reply, "config_warnings");
  if (warnings.is_array() && !warnings.empty()) {
    out << "\nConfiguration warnings\n";
    for (const Json& w : warnings) out << "  " << value_text(w) << '\n';
  }
  return Outcome{kExitOk, reply, out.str()};
}

}  // namespace

int cmd_status(const GlobalOptions& g, Io io) {
  return print_results(g, io, collect(g, status_of));
}

int cmd_health(const GlobalOptions& g, bool verbose, Io io) {
  auto health = [verbose](const Target& target, const Client& client) {
    const Json reply = client.request("health");
    const std::string status = str(reply, "status", "unknown");
    std::ostringstream out;
    if (verbose)
      out << "Process " << process_label(reply, target.pid) << ", rsrmem "
          << str(reply, "version", "?") << '\n';
    out << "Health check complete. Status: " << status << "\n\nComponent status:\n";
    const Json& components = member(reply, "components");
    for (auto it = components.begin(); it != components.end(); ++it) {
      const Json& c = it.value();
      out << "  " << it.key() << ": " << (c.is_object() ? str(c, "status", "?") : value_text(c));
      // A degraded component always says why: that is what the operator acts on.
      const std::string detail = str(c, "detail");
      const bool problem = c.is_object() && str(c, "status") == "degraded";
      if ((verbose || problem) && !detail.empty()) out << " (" << detail << ")";
      out << '\n';
    }
    return Outcome{status == "healthy" ? kExitOk : kExitNegative, reply, out.str()};
  };
  return print_results(g, io, collect(g, health));
}

int cmd_update_metrics(const GlobalOptions& g, Io io) {
  auto update = [](const Target& target, const Client& client) {
    const Json reply = client.request("update_metrics");
    std::ostringstream out;
    out << "Metrics updated for " << process_label(reply, target.pid) << ": "
        << human_count(num(reply, "sites")) << " call sites refreshed at "
        << local_time(num(reply, "updated_at")) << ".\n";
    return Outcome{kExitOk, reply, out.str()};
  };
  return print_results(g, io, collect(g, update));
}

}  // namespace rsr::ctl
