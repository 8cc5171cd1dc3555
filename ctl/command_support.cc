#include <algorithm>
#include <cmath>
#include <thread>

#include "commands.h"
#include "errors.h"
#include "format.h"
#include "watchdog.h"

namespace rsr::ctl {
namespace {

std::string pid_text(const Target& t) {
  return t.pid > 0 ? "pid " + std::to_string(t.pid) : t.socket;
}

// A process that has just started may not be listening yet, and one mid-restart may briefly
// refuse; only a second refusal after a pause marks a live pid's socket as stale.
constexpr std::chrono::milliseconds kStaleRetryDelay{200};

// `what` says how we know, e.g. "process 12 is gone".
void mark_gone(const std::string& dir, const Target& t, TargetResult& r, const std::string& what) {
  r.state = TargetResult::State::kGone;
  r.code = kExitOk;
  const std::string left_alone = remove_stale_socket(dir, SocketFile{t.pid, t.socket});
  r.message = what + "; " +
              (left_alone.empty() ? "removed stale socket " + t.socket
                                  : "left its socket " + t.socket + " alone: " + left_alone);
}

}  // namespace

double num(const Json& j, const char* key, double fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<double>();
}

std::string str(const Json& j, const char* key, const std::string& fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

const Json& member(const Json& j, const char* key) {
  static const Json kEmpty = Json::object();
  if (!j.is_object()) return kEmpty;
  auto it = j.find(key);
  return it == j.end() ? kEmpty : *it;
}

std::string process_label(const Json& reply, pid_t fallback_pid) {
  const auto pid = static_cast<long long>(num(reply, "pid", fallback_pid));
  std::string name = str(reply, "service");
  if (name.empty()) {
    name = str(reply, "program");
    const size_t slash = name.rfind('/');
    if (slash != std::string::npos) name = name.substr(slash + 1);
  }
  return std::to_string(pid) + (name.empty() ? "" : " (" + name + ")");
}

std::string age_sentence(const Json& age) {
  const double samples = num(age, "live_samples");
  if (!age.is_object() || samples <= 0) return "";
  // The oldest age that half the samples or more have passed.
  std::string older;
  double share = 0;
  const Json& bounds = member(age, "older_than");
  if (bounds.is_array()) {
    for (const Json& b : bounds) {
      const double s = num(b, "samples") / samples;
      if (s < 0.5) break;
      older = human_span(num(b, "s"));
      share = s;
    }
  }
  std::string text = older.empty()
                         ? "most of its " + human_count(samples) + " live samples are 10 seconds old or younger"
                         : fixed(std::floor(share * 100), 0) + "% of its " + human_count(samples) +
                               " live samples are older than " + older;
  const std::string pattern = str(age, "pattern");
  if (pattern == "steady") text += ", born steadily since start";
  else if (pattern == "startup") text += ", born in the first quarter of the process's life";
  else if (pattern == "recent") text += ", born in the last quarter of the process's life";
  else if (pattern == "mixed") text += ", born unevenly over the process's life";
  return text;
}

std::string estimates_warning(const Json& reply) {
  const Json& estimates = member(member(reply, "sampling"), "estimates");
  if (str(estimates, "status", "ok") != "degraded") return "";
  return "Warning: " + str(estimates, "detail") + "\n";
}

std::vector<TargetResult> collect(const GlobalOptions& g, const PerTarget& fn,
                                  bool all_by_default) {
  TargetRequest request = g.target;
  if (all_by_default && request.mode == TargetMode::kAuto) request.mode = TargetMode::kAll;
  const std::vector<Target> targets = resolve_targets(request);
  if (targets.empty() && request.mode == TargetMode::kAll && !all_by_default)
    throw CtlError(kExitNotFound, "no monitored processes in " + request.dir);

  std::vector<TargetResult> results;
  for (const Target& target : targets) {
    TargetResult r;
    r.target = target;
    if (target.cleanable && !pid_alive(target.pid)) {
      mark_gone(request.dir, target, r, "process " + std::to_string(target.pid) + " is gone");
      results.push_back(std::move(r));
      continue;
    }
    const Client client(target.socket, g.timeout);
    // Each process gets --timeout for its answer and the work on it (watchdog.h).
    watchdog::renew(g.timeout, "querying " + pid_text(target) +
                                   (target.pid > 0 ? " (" + target.socket + ")" : std::string()));
    for (int attempt = 0;; ++attempt) {
      try {
        r.outcome = fn(target, client);
        r.state = TargetResult::State::kOk;
        r.code = r.outcome.code;
        if (r.target.pid == 0) r.target.pid = static_cast<pid_t>(num(r.outcome.json, "pid", 0));
      } catch (const CtlError& e) {
        if (e.stale() && target.cleanable) {
          if (attempt == 0) {
            std::this_thread::sleep_for(kStaleRetryDelay);
            continue;
          }
          mark_gone(request.dir, target, r,
                    "pid " + std::to_string(target.pid) +
                        ": nothing listens on its socket any more (the monitored process "
                        "exited and the pid was reused)");
          break;
        }
        if (e.code() == kExitNotFound && target.cleanable) {  // it exited and removed its socket
          r.state = TargetResult::State::kGone;
          r.code = kExitOk;
          r.message = "process " + std::to_string(target.pid) + " exited while being queried";
          break;
        }
        r.state = TargetResult::State::kFailed;
        r.code = e.code();
        r.message = pid_text(target) + ": " + e.what();
      } catch (const nlohmann::json::exception& e) {
        r.state = TargetResult::State::kFailed;
        r.code = kExitConnection;
        r.message = pid_text(target) + ": unexpected reply: " + e.what();
      }
      break;
    }
    results.push_back(std::move(r));
  }
  return results;
}

int print_results(const GlobalOptions& g, Io io, const std::vector<TargetResult>& results) {
  const bool several = g.target.mode == TargetMode::kAll;
  Json keyed = Json::object();
  bool first_block = true;
  for (const TargetResult& r : results) {
    const std::string key = std::to_string(r.target.pid);
    switch (r.state) {
      case TargetResult::State::kOk:
        if (g.format == OutputFormat::kJson) {
          if (several)
            keyed[key] = r.outcome.json;
          else
            io.out << r.outcome.json.dump(2) << '\n';
        } else {
          if (several) {
            if (!first_block) io.out << '\n';
            io.out << "== " << process_label(r.outcome.json, r.target.pid) << " ==\n";
          }
          io.out << r.outcome.text;
          first_block = false;
        }
        break;
      case TargetResult::State::kGone:
        if (several) keyed[key] = Json{{"ok", false}, {"state", "gone"}, {"error", r.message}};
        break;
      case TargetResult::State::kFailed:
        if (several) keyed[key] = Json{{"ok", false}, {"state", "error"}, {"error", r.message}};
        break;
    }
  }
  if (several && g.format == OutputFormat::kJson) io.out << keyed.dump(2) << '\n';
  return report_failures(g, io, results);
}

int report_failures(const GlobalOptions& g, Io io, const std::vector<TargetResult>& results) {
  int code = kExitOk;
  bool any_answer = false;
  for (const TargetResult& r : results) {
    code = std::max(code, r.code);
    if (r.state != TargetResult::State::kOk) io.err << "rsrmemctl: " << r.message << '\n';
    any_answer = any_answer || r.state != TargetResult::State::kGone;
  }
  if (g.target.mode == TargetMode::kAll && !any_answer) {
    io.err << "rsrmemctl: no live monitored processes in " << g.target.dir << '\n';
    return kExitNotFound;
  }
  return code;
}

}  // namespace rsr::ctl
