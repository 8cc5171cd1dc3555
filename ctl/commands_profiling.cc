// `rsrmemctl start-profiling`, `stop-profiling` and `cleanup-profiles`: timed captures in the
// monitored process (common/capture.md), and the removal of old capture files.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <regex>
#include <sstream>
#include <vector>

#include "capture_files.h"
#include "commands.h"
#include "config.h"
#include "errors.h"
#include "spans.h"
#include "format.h"

namespace rsr::ctl {
namespace {

constexpr std::chrono::milliseconds kStopTimeout{10000};

constexpr double kMaxDurationS = 7 * 86400;  // the library refuses longer (handlers.cc)
// The settings table's defaults (common/config.h): this command and the library agree on them.
const Config& setting_defaults() {
  static const Config defaults = [] {
    Config c;
    parse_config([](const char*) -> const char* { return nullptr; }, nullptr, nullptr, &c);
    return c;
  }();
  return defaults;
}

std::string duration_text(double seconds) {
  if (seconds <= 0) return "-";
  return human_span(seconds);
}

std::string number_text(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

Json duration_value(double seconds) {
  if (std::floor(seconds) == seconds) return Json(static_cast<long long>(seconds));
  return Json(seconds);
}

void render_profiler(std::ostream& out, const Json& p) {
  out << str(p, "id", "?") << '\n';
  const std::string kind = str(p, "kind");
  if (!kind.empty()) out << "  kind      " << kind << '\n';
  out << "  file      " << str(p, "path", "?") << '\n';
  out << "  elapsed   " << duration_text(num(p, "elapsed_s")) << " of "
      << (num(p, "duration_s") > 0 ? duration_text(num(p, "duration_s")) : "the scope") << '\n';
  out << "  written   " << human_count(num(p, "events")) << " events, "
      << human_bytes(num(p, "bytes")) << '\n';
  const double dropped = num(p, "dropped_events", num(p, "dropped"));
  if (dropped > 0) out << "  dropped   " << human_count(dropped) << " events\n";
}

}  // namespace

double parse_profiling_duration(const std::string& text) {
  const auto bad = [&text](const std::string& why) {
    return CtlError(kExitUsage, "bad --duration '" + text + "': " + why +
                                    " (minutes, e.g. 10 or 0.5, or with units: 30s, 2m, 1h30m, 2d; "
                                    "from 1 second to 7 days)");
  };
  double seconds = 0;
  try {
    seconds = parse_span(text, 60);
  } catch (const SpanError& e) {
    throw bad(e.what());
  }
  if (seconds < 1) throw bad("shorter than 1 second");
  if (seconds > kMaxDurationS) throw bad("longer than 7 days");
  return seconds;
}

bool valid_profile_id(const std::string& id) {
  static const std::regex kId("^(background|scope)_[A-Za-z0-9_-]{1,80}$");
  return std::regex_match(id, kId);
}

int cmd_start_profiling(const GlobalOptions& g, double duration_s, Io io) {
  auto start = [&](const Target&, const Client& client) {
    const Json reply =
        client.request(Json{{"cmd", "start_profiling"}, {"duration_s", duration_value(duration_s)}});
    Outcome outcome;
    outcome.json = reply;
    std::ostringstream out;
    out << str(reply, "id", "?") << '\n';
    out << "  file      " << str(reply, "path", "?") << '\n';
    out << "  duration  " << duration_text(num(reply, "duration_s", duration_s));
    if (num(reply, "max_bytes") > 0) out << ", at most " << human_bytes(num(reply, "max_bytes"));
    out << '\n';
    outcome.text = out.str();
    return outcome;
  };
  return print_results(g, io, collect(g, start));
}

int cmd_stop_profiling(const GlobalOptions& g, const std::string& id, Io io) {
  if (!id.empty() && !valid_profile_id(id))
    throw CtlError(kExitUsage, "bad --profile-id '" + id +
                                   "': expected background_<...> or scope_<...> (letters, "
                                   "digits, '_' and '-', at most 80 after the prefix)");
  auto stop = [&](const Target&, const Client& client) {
    Json request{{"cmd", "stop_profiling"}};
    if (!id.empty()) request["id"] = id;
    const Json reply = client.request(request);
    Outcome outcome;
    outcome.json = reply;
    std::ostringstream out;
    if (id.empty()) {
      const Json& profilers = member(reply, "profilers");
      if (!profilers.is_array() || profilers.empty()) {
        out << "No active profiling captures.\n";
      } else {
        out << "Active profiling captures (stop one with --profile-id=ID):\n";
        for (const Json& p : profilers) render_profiler(out, p);
      }
    } else {
      const Json& s = member(reply, "stopped");
      out << "Stopped " << str(s, "id", id) << '\n';
      out << "  file      " << str(s, "path", "?") << '\n';
      out << "  written   " << human_count(num(s, "events")) << " events, "
          << human_bytes(num(s, "bytes")) << '\n';
      const std::string reason = str(s, "reason");
      if (!reason.empty()) out << "  reason    " << reason << '\n';
    }
    outcome.text = out.str();
    return outcome;
  };
  // The process waits up to 5 s for the capture's file to be complete before it answers.
  GlobalOptions waiting = g;
  if (!id.empty()) waiting.timeout = std::max(g.timeout, kStopTimeout);
  return print_results(waiting, io, collect(waiting, stop));
}

int cmd_cleanup_profiles(const GlobalOptions& g, const CleanupOptions& options, Io io) {
  double days = options.days;
  if (days < 0) {
    const char* env = std::getenv("RSR_PROFILING_CLEANUP_DAYS");
    days = static_cast<double>(setting_defaults().profiling_cleanup_days);
    if (env && *env) {
      char* end = nullptr;
      const double v = std::strtod(env, &end);
      if (*end != '\0' || !(v >= 0) || !std::isfinite(v))
        throw CtlError(kExitUsage, std::string("bad RSR_PROFILING_CLEANUP_DAYS '") + env +
                                       "': expected a number of days, 0 or more");
      days = v;
    }
  }
  std::string dir = options.dir;
  if (dir.empty()) {
    const char* env = std::getenv("RSR_PROFILING_OUTPUT_DIR");
    dir = env && *env ? env : setting_defaults().profiling_output_dir;
  }

  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      if (g.format == OutputFormat::kJson)
        io.out << Json{{"dir", dir}, {"days", days}, {"removed", Json::array()},
                       {"removed_bytes", 0}}
                      .dump(2)
               << '\n';
      else
        io.out << "No capture directory " << dir << ": nothing to clean up.\n";
      return kExitOk;
    }
    if (err == ELOOP || err == ENOTDIR)
      throw CtlError(kExitUsage, dir + " is not a directory (symlinks are not followed)");
    throw CtlError(kExitNotFound, "cannot open " + dir + ": " + std::strerror(err));
  }
  DIR* d = ::fdopendir(dfd);
  if (!d) {
    ::close(dfd);
    throw CtlError(kExitNotFound, "cannot read " + dir + ": " + std::strerror(errno));
  }
  const time_t now = ::time(nullptr);
  const double cutoff = days == 0 ? HUGE_VAL : static_cast<double>(now) - days * 86400;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (capture::capture_file_name(e->d_name)) names.push_back(e->d_name);
  }
  std::sort(names.begin(), names.end());

  Json removed = Json::array();
  uint64_t removed_bytes = 0;
  int code = kExitOk;
  std::ostringstream text;
  for (const std::string& name : names) {
    struct stat st {};
    if (!capture::capture_file_expired(dfd, name.c_str(), cutoff, now, &st)) continue;
    if (::unlinkat(dfd, name.c_str(), 0) != 0) {
      io.err << "rsrmemctl: cannot remove " << dir << '/' << name << ": " << std::strerror(errno)
             << '\n';
      code = kExitNegative;
      continue;
    }
    removed_bytes += static_cast<uint64_t>(st.st_size);
    removed.push_back(Json{{"file", dir + "/" + name},
                           {"bytes", static_cast<uint64_t>(st.st_size)},
                           {"mtime", static_cast<long long>(st.st_mtime)}});
    text << "removed " << dir << '/' << name << " (" << human_bytes(static_cast<double>(st.st_size))
         << ")\n";
  }
  ::closedir(d);

  const std::string age = days == 0 ? "every capture" : "captures older than " +
                                                            number_text(days) + " days";
  if (removed.empty())
    text << "No " << (days == 0 ? "captures" : age) << " in " << dir << ".\n";
  else
    text << "Removed " << removed.size() << (removed.size() == 1 ? " file, " : " files, ")
         << human_bytes(static_cast<double>(removed_bytes)) << " (" << age << " in " << dir
         << ").\n";
  if (g.format == OutputFormat::kJson)
    io.out << Json{{"dir", dir}, {"days", days}, {"removed", removed},
                   {"removed_bytes", removed_bytes}}
                  .dump(2)
           << '\n';
  else
    io.out << text.str();
  return code;
}

}  // namespace rsr::ctl
