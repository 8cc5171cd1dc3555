// `rsrmemctl heap-profile`: the sampled heap profile of each targeted process, written now as
// pprof (gzipped profile.proto) or folded stacks (heap_profile.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "commands.h"
#include "errors.h"
#include "format.h"
#include "heap_profile.h"
#include "report_export.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

// A job name as part of a file name: anything but letters, digits, '.', '_' and '-' becomes '_'.
std::string file_safe(const std::string& name) {
  std::string out = name.empty() ? std::string("process") : name;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  if (out[0] == '.') out[0] = '_';
  return out;
}

std::string default_name(const HeapProfile& p, const HeapProfileOptions& o) {
  const bool folded = o.format == "folded";
  const std::string kind = o.kind == "alloc" ? "allocs" : "heap";
  return file_safe(p.job) + "." + std::to_string(p.pid) + "." + kind +
         (folded ? ".folded" : ".pb.gz");
}

int64_t total(const HeapProfile& p, bool inuse) {
  int64_t sum = 0;
  for (const HeapSite& s : p.sites) sum += inuse ? s.inuse_space : s.alloc_space;
  return sum;
}

}  // namespace

int cmd_heap_profile(const GlobalOptions& g, const HeapProfileOptions& options, Io io) {
  const HeapKind kind = options.kind == "alloc" ? HeapKind::kAlloc : HeapKind::kInuse;
  const bool all = g.target.mode == TargetMode::kAll;
  const bool to_stdout = options.output == "-" || (options.output.empty() && !all &&
                                                    options.format == "folded");
  if (all && options.output == "-")
    throw CtlError(kExitUsage, "heap-profile --all writes one file per process: -o names a "
                               "directory, not stdout");
  if (all && !options.output.empty()) {
    struct stat st {};
    if (stat(options.output.c_str(), &st) != 0)
      throw CtlError(kExitNotFound, "heap-profile --all: -o " + options.output + ": " +
                                        std::strerror(errno) + " (a directory is expected)");
    if (!S_ISDIR(st.st_mode))
      throw CtlError(kExitUsage, "heap-profile --all writes one file per process: -o " +
                                     options.output + " is not a directory");
  }
  auto one = [&](const Target& target, const Client& client) {
    const Json reply = client.request(Json{{"cmd", "heap_profile"}});
    const auto pid = static_cast<pid_t>(num(reply, "pid", target.pid));
    const HeapProfile profile = read_heap_profile(
        reply, std::make_shared<Symbolizer>(modules_of(reply), pid > 0 ? std::optional<pid_t>(pid)
                                                                        : std::nullopt));
    auto write = [&](std::ostream& out) {
      if (options.format == "folded") {
        write_heap_folded(profile, kind, out);
      } else {
        const std::string packed = gzip(encode_heap_pprof(profile, kind));
        out.write(packed.data(), static_cast<std::streamsize>(packed.size()));
      }
    };
    std::string where = "stdout";
    if (to_stdout) {
      write(io.out);
      io.out.flush();
    } else {
      const bool given = !all && !options.output.empty();
      where = given ? options.output
                    : (all && !options.output.empty() ? options.output + "/" : std::string()) +
                          default_name(profile, options);
      write_file(where, given, write);
    }
    Outcome outcome;
    outcome.json = Json{{"pid", pid},
                        {"service", profile.service},
                        {"file", where},
                        {"sites", profile.sites.size()},
                        {"inuse_bytes", total(profile, true)},
                        {"alloc_bytes", total(profile, false)},
                        {"interval_bytes", profile.interval_bytes}};
    outcome.text = "Wrote the heap profile of " + process_label(reply, target.pid) + " to " +
                   where + ": " + std::to_string(profile.sites.size()) + " call sites, " +
                   human_bytes(static_cast<double>(total(profile, true))) + " in use, " +
                   human_bytes(static_cast<double>(total(profile, false))) +
                   " allocated since start (" +
                   (profile.interval_bytes
                        ? "estimates from allocations sampled every " +
                              human_bytes(static_cast<double>(profile.interval_bytes)) +
                              " on average)"
                        : "exact: every allocation is tracked)") +
                   "\n";
    return outcome;
  };
  const std::vector<TargetResult> results = collect(g, one);
  if (!to_stdout) return print_results(g, io, results);
  // The profile went to stdout: what was written is said on stderr.
  Io quiet{io.err, io.err};
  return print_results(g, quiet, results);
}

}  // namespace rsr::ctl
