// The commands that talk to monitored processes, and the plumbing they share: resolving the
// targets, running a command against each one, cleaning up the sockets of processes that are
// gone, and printing the results as text or JSON with one exit code.
//
// One command family per file: commands_list.cc (list), commands_status.cc (status,
// health-check, update-metrics), commands_memory.cc (memory-summary), commands_leaks.cc
// (check-leaks), commands_metrics.cc (metrics, serve, push), commands_profiling.cc
// (start-profiling, stop-profiling, cleanup-profiles), commands_reports.cc (summary, stats,
// table, tree, flamegraph, export over a capture file); site_stacks.h symbolizes and prints
// call sites for memory-summary and check-leaks. Each command is a
// plain function over GlobalOptions and the output streams, so tests can run it against a fake
// server.
#pragma once

#include <chrono>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "client.h"
#include "profile_model.h"
#include "target.h"

namespace rsr::ctl {

enum class OutputFormat { kText, kJson };

struct GlobalOptions {
  TargetRequest target;
  OutputFormat format = OutputFormat::kText;
  std::chrono::milliseconds timeout{5000};
};

struct Io {
  std::ostream& out;  // the command's data
  std::ostream& err;  // diagnostics: "rsrmemctl: ..." lines
};

int cmd_list(const GlobalOptions& g, Io io);
int cmd_status(const GlobalOptions& g, Io io);
int cmd_health(const GlobalOptions& g, bool verbose, Io io);
int cmd_update_metrics(const GlobalOptions& g, Io io);

struct SummaryOptions {
  int top = 20;    // sites per list, asked of the process
  int frames = 8;  // frames shown per site in text output; 0: all
};
int cmd_memory_summary(const GlobalOptions& g, const SummaryOptions& options, Io io);

struct LeakOptions {
  bool verbose = false;  // each site's full stack and levels, and the history
};
// Exit status: 0 no indicators, 1 indicators found (with --all: in any process), 3 no such
// target, 4 could not check (see kCheckLeaksHelp in main.cc).
int cmd_check_leaks(const GlobalOptions& g, const LeakOptions& options, Io io);

// ---- Prometheus (commands_metrics.cc; metrics_exposition.h builds the families) ----

// Prints the text exposition of every targeted process's `metrics` reply (--format json: the
// replies themselves, as sent).
int cmd_metrics(const GlobalOptions& g, Io io);

struct ServeOptions {
  std::string listen = "127.0.0.1:9464";  // IPv4 or [IPv6] address and port; port 0: any free
};
// --listen as civetweb takes it: "127.0.0.1:9464", "[::1]:0"; "localhost" means 127.0.0.1.
// Throws CtlError (kExitUsage) naming what is wrong.
std::string civetweb_listen_address(const std::string& listen);
// HTTP /metrics until SIGINT or SIGTERM (then 0); each scrape queries the targets afresh. Throws
// CtlError (kExitUsage) when --listen is malformed or cannot be bound.
int cmd_serve(const GlobalOptions& g, const ServeOptions& options, Io io);

struct PushOptions {
  std::string gateway;     // Pushgateway, http://host:port; empty: no metrics pushed
  std::string job;         // empty: each process's service name
  double interval_s = 0;   // 0: push once
  std::string pyroscope;   // Pyroscope, http://host:port; empty: no heap profiles pushed
};
// Pushes each targeted process's metrics as its own group (metrics_push.h) and/or its heap
// profile to Pyroscope (pyroscope_push.h). Once: the exit code of the worst failure (4 when a
// service could not be reached or refused). Repeatedly: until SIGINT or SIGTERM (then 0),
// reporting failures as they happen.
int cmd_push(const GlobalOptions& g, const PushOptions& options, Io io);

// ---- Live view (commands_top.cc) ----

struct TopOptions {
  double interval_s = 2;  // seconds between refreshes
};
// Refreshes in place until q, SIGINT or SIGTERM (exit 0); one plain frame when stdout or stdin
// is not a terminal.
int cmd_top(const GlobalOptions& g, const TopOptions& options, Io io);

// ---- Heap profiles from the always-on sampler (commands_heap.cc; heap_profile.h) ----

struct HeapProfileOptions {
  std::string output;           // -o: a file (one process) or a directory (--all); "-": stdout
  std::string format = "pprof";  // "pprof" or "folded"
  std::string kind = "inuse";    // "inuse" or "alloc": the default sample type / folded value
};
// Writes each targeted process's heap profile now; one file per process with --all (named
// <job>.<pid>.heap.pb.gz, or .allocs / .folded). Says what it wrote on stderr.
int cmd_heap_profile(const GlobalOptions& g, const HeapProfileOptions& options, Io io);

// Writes a report to `path` (commands_reports.cc). A name given with -o (`given`) is the
// operator's: opened as asked. A name made up beside other files must be, or become, a regular
// file: not a symlink planted there, nor a FIFO that would block the report.
void write_file(const std::string& path, bool given,
                const std::function<void(std::ostream&)>& write);

// ---- Profiling captures (commands_profiling.cc; capture_reader.h reads the files) ----

// --duration as start-profiling takes it: minutes ("10", "0.5"), or with a unit ("30s", "2m",
// "1h").
// Returns seconds, from 1 s to 24 h. Throws CtlError (kExitUsage) naming the bad value.
double parse_profiling_duration(const std::string& text);

// True for a capture id as the preload makes them: ^(background|scope)_[A-Za-z0-9_-]{1,80}$.
bool valid_profile_id(const std::string& id);

// Asks the targeted processes to start a capture of `duration_s` seconds and prints each reply's
// id (first line) and file. A refusal (profiling disabled, already running, bad directory) exits
// 4 with the process's message.
int cmd_start_profiling(const GlobalOptions& g, double duration_s, Io io);

// Without an id: lists the active captures. With one (validated first: kExitUsage when
// malformed): stops it and prints what was written; an unknown id is the process's refusal (4).
int cmd_stop_profiling(const GlobalOptions& g, const std::string& id, Io io);

struct CleanupOptions {
  double days = -1;  // < 0: RSR_PROFILING_CLEANUP_DAYS, else 7; 0: every capture
  std::string dir;   // "": RSR_PROFILING_OUTPUT_DIR, else /tmp/rsr_memory_profiles
};
// Deletes capture files older than `days` in `dir` (see kCleanupHelp in main.cc for exactly which
// files). Exit 0, or 1 when some file could not be removed, 2 for a bad --days or a --dir that
// is a symlink or not a directory.
int cmd_cleanup_profiles(const GlobalOptions& g, const CleanupOptions& options, Io io);

// ---- Reports over a capture file (commands_reports.cc) ----

struct ReportOptions {
  std::string file;
  std::string base;         // diff: the capture compared against (`file` is the newer one)
  ProfileView view = ProfileView::kAll;
  int top = 10;             // rows / functions listed; 0: all
  int depth = 0;            // tree: levels shown; 0: all
  double threshold = 1.0;   // tree: hide nodes below this percent of the view's bytes
  std::string output;       // flamegraph / export: output file ("" : derived or stdout)
  std::string export_format;  // export: "pprof" or "folded"
  bool by_count = false;    // export --format folded: allocations instead of bytes
  std::string diff_as = "table";  // diff: "table", "tree" or "flamegraph"
};
// Each reads the capture (progress on stderr when it is a terminal), prints warnings about a
// truncated or damaged capture on stderr, and the report on stdout (text or --format json).
// Errors: a missing/unreadable file exits 3, a file that is not a capture 2.
int cmd_profile_summary(const GlobalOptions& g, const ReportOptions& options, Io io);
int cmd_profile_stats(const GlobalOptions& g, const ReportOptions& options, Io io);
int cmd_profile_table(const GlobalOptions& g, const ReportOptions& options, Io io);
int cmd_profile_tree(const GlobalOptions& g, const ReportOptions& options, Io io);
// diff: `options.file` against `options.base`, in the view: as a table, function and line by
// function and line, what grew or is new (largest growth first) and what shrank or is gone; as a
// tree, the call trees of the growth and of the shrinkage (stacks matched frame by frame); as a
// flamegraph, the page of the growth (default NEW-diff.html).
int cmd_profile_diff(const GlobalOptions& g, const ReportOptions& options, Io io);
// flamegraph: one HTML file (default: FILE with .bin replaced by .html); export: pprof (default
// FILE.pb.gz) or folded (default stdout).
int cmd_profile_flamegraph(const ReportOptions& options, Io io);
int cmd_profile_export(const ReportOptions& options, Io io);

// ---- plumbing (command_support.cc) ----

// What one command produced for one process.
struct Outcome {
  int code = 0;      // exit code contribution (kExitOk or kExitNegative)
  Json json;         // printed for --format json
  std::string text;  // printed for --format text
};

struct TargetResult {
  enum class State { kOk, kGone, kFailed };
  Target target;
  State state = State::kOk;
  int code = 0;
  Outcome outcome;      // kOk
  std::string message;  // kGone / kFailed: what happened, for stderr and JSON
};

using PerTarget = std::function<Outcome(const Target&, const Client&)>;

// Runs `fn` against every target of `g`. With `all_by_default` (list), no target option means
// every process. Each target's query and `fn` get a fresh g.timeout from the watchdog, when
// main() armed it (watchdog.h). Processes found gone while scanning the directory (their pid no longer exists,
// or their socket refuses connections twice) have their socket removed and are reported kGone.
// Throws CtlError when the targets cannot be resolved.
std::vector<TargetResult> collect(const GlobalOptions& g, const PerTarget& fn,
                                  bool all_by_default = false);

// Prints results the usual way: one text block per process (with a "== pid N ==" header when
// several were targeted) or JSON (the object itself, or an object keyed by pid for --all), and
// errors on stderr. Returns the exit code (the highest over the processes).
int print_results(const GlobalOptions& g, Io io, const std::vector<TargetResult>& results);

// The stderr half of print_results, for commands that print every process's answer as one
// (metrics): a line per process gone or failed, and the exit code.
int report_failures(const GlobalOptions& g, Io io, const std::vector<TargetResult>& results);

// Tolerant accessors for reply fields: a missing or mistyped field reads as the fallback, so a
// reply from an older or newer library still renders.
double num(const Json& j, const char* key, double fallback = 0);
std::string str(const Json& j, const char* key, const std::string& fallback = "");
const Json& member(const Json& j, const char* key);  // an empty object when missing

// "1234 (svc)" from a reply's pid and service.
std::string process_label(const Json& reply, pid_t fallback_pid);

// "Warning: ..." (one line) when the reply's sampling says its per-site estimates are no longer
// trustworthy (call sites beyond the site table, samples the block table could not hold); "".
std::string estimates_warning(const Json& reply);

// A site's `age` object in words: "94% of its 52 live samples are older than 10 minutes, born
// steadily since start"; "" when the reply has none.
std::string age_sentence(const Json& age);

}  // namespace rsr::ctl
