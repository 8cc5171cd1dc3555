// rsrmemctl: command-line wiring only. Every command lives in its own file (commands_*.cc,
// run.cc); this file declares the flags, maps parse errors to exit code 2 and CtlError to its
// code.
#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <iostream>
#include <limits>

#include "cmdline.h"
#include "commands.h"
#include "errors.h"
#include "format.h"
#include "run.h"
#include "spans.h"
#include "target.h"
#include "watchdog.h"

#ifndef RSR_VERSION
#define RSR_VERSION "unknown"
#endif

namespace {

// An option holding seconds that also takes units (30s, 5m, 1h30m, 1d): the text becomes the
// number of seconds, or the error says what is wrong and the range.
CLI::Validator seconds_option(double min_s, double max_s) {
  const auto text = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", v);
    return v < 60 ? std::string(buf) : rsr::ctl::human_span(v);
  };
  const std::string range = "from " + text(min_s) + " to " + text(max_s);
  return CLI::Validator(
      [=](std::string& value) -> std::string {
        double s = 0;
        try {
          s = rsr::ctl::parse_span(value, 1);
        } catch (const rsr::ctl::SpanError& e) {
          return "bad length of time '" + value + "': " + e.what() + " (seconds, or with units: 30s, 5m, 1h30m; " +
                 range + ")";
        }
        if (s < min_s || s > max_s) return "'" + value + "' is out of range (" + range + ")";
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", s);
        value = buf;
        return "";
      },
      "", "seconds");
}

using namespace rsr::ctl;

constexpr const char* kFooter =
    "Targets: --pid PID, --socket PATH or --all; with none, the only monitored process.\n"
    "Sockets live in $RSR_SOCKET_DIR, else $XDG_RUNTIME_DIR/rsrmem, else /tmp/rsrmem-<uid>.\n\n";

constexpr const char* kCheckLeaksHelp =
    "Runs the process's leak detection now over the history it keeps (it also runs by itself\n"
    "every RSR_LEAK_CHECK_INTERVAL seconds) and names the call sites that keep growing.\n\n"
    "Exit codes:\n"
    "  0  no leak indicators\n"
    "  1  leak indicators found (with --all: in at least one process)\n"
    "  2  bad usage\n"
    "  3  target not found (with --all: no live monitored process)\n"
    "  4  could not check: leak detection is disabled (RSR_LEAK_DETECTION_ENABLED=false), the\n"
    "     library predates leak detection, or connection/protocol trouble (with --all: some\n"
    "     process could not be checked and none had indicators)\n";

constexpr const char* kMetricsHelp =
    "Every series carries job (the service name) and instance (the host's name, the same across\n"
    "restarts; <hostname>/2, /3, ... for more processes of a job); the pid is on rsr_info. With\n"
    "--all, every process is in the one exposition, told apart by instance. The process refuses when\n"
    "RSR_PROMETHEUS_METRICS_ENABLED=false (exit 4).\n";

constexpr const char* kServeHelp =
    "Each scrape of http://ADDR/metrics queries the targeted processes afresh (with --all,\n"
    "processes that start or exit are followed); a process that cannot be queried is left out\n"
    "and counted in rsr_exporter_scrape_errors_total. Listens on loopback unless told otherwise\n"
    "(0.0.0.0:9464 for every interface). Runs until SIGINT or SIGTERM, then exits 0; a bad\n"
    "--listen, or one that cannot be bound, exits 2.\n"
    "/debug/pprof/ lists the processes; /debug/pprof/heap?pid=PID and /debug/pprof/allocs?pid=PID\n"
    "answer their heap profiles as Go's do (seconds=N: the delta over N seconds; debug=1: folded\n"
    "text), for go tool pprof, Alloy's pyroscope.scrape and Parca.\n";

constexpr const char* kHeapProfileHelp =
    "The profile of what the always-on sampler knows (no capture, no restart): every call site\n"
    "with alloc_objects, alloc_space (since start), inuse_objects and inuse_space (live now),\n"
    "unbiased estimates from allocations sampled every RSR_SAMPLE_INTERVAL_BYTES on average\n"
    "(exact with RSR_MEMORY_DETAILED_TRACKING=true). Read it with `go tool pprof FILE`, Pyroscope\n"
    "or speedscope. The process is never stopped: it only reads its counters.\n";

constexpr const char* kPushHelp =
    "--gateway: each process is its own group, job=J (default: its service name) and\n"
    "instance=<hostname> (/2, /3, ... for more processes of a job), and each push replaces that\n"
    "group's metrics (HTTP PUT): one group per job and host, whatever the pids.\n"
    "--pyroscope: each process's heap profile goes to POST /ingest (format=pprof) as\n"
    "JOB{hostname=...,process=K} (K: the job's K-th process on the host, as in instance):\n"
    "allocations since the previous push, what is in use now; a failed push is covered by the\n"
    "next one.\n"
    "Once: exit 0 when every push succeeded, 4 when a service could not be reached or refused.\n"
    "With --interval: failures are reported and retried; exits 0 on SIGINT or SIGTERM.\n";

constexpr const char* kStartProfilingHelp =
    "Records every allocation and free of the process, with stacks, threads and timestamps, to\n"
    "RSR_PROFILING_OUTPUT_DIR/profile_YYYYMMDD_HHMMSS_<pid>.bin until the duration ends,\n"
    "stop-profiling stops it, or RSR_MAX_PROFILE_SIZE_MB is reached. Prints the capture's id\n"
    "(first line) and file. Read the file with summary, stats, table, tree, flamegraph, export.\n"
    "The process refuses (exit 4) when RSR_PROFILING_ENABLED is not true, a capture is already\n"
    "running, or the output directory cannot be used.\n";

constexpr const char* kStopProfilingHelp =
    "Without --profile-id: lists the active captures. With it: stops that capture and prints\n"
    "its file. A malformed id exits 2; an id the process does not know exits 4 (\"no active\n"
    "profiling capture\").\n";

constexpr const char* kCleanupHelp =
    "Removes, directly in the directory (never below it, never through a symlink), regular\n"
    "files named profile_*.bin, scope_*.bin or *.bin.part that start with the capture magic\n"
    "RSRMCAPT and were last modified more than N days ago. A .bin.part file modified within the\n"
    "last minute is being written and is kept even with --days 0. Needs no target.\n"
    "Exit codes: 0 done (also when nothing matched or the directory does not exist), 1 some\n"
    "file could not be removed, 2 bad --days or a --dir that is not a directory.\n";

constexpr const char* kReportHelp =
    "FILE is a capture written by start-profiling or a profiling scope. Views: every allocation\n"
    "(default), --leaks (still live when the capture ended), --temporary (freed by the same\n"
    "thread before it allocated anything else). A truncated capture is read up to the damage,\n"
    "with a warning on stderr. FILE is untrusted: only a regular file is read, and what reading\n"
    "it may take (decompression, memory) grows with its size; a file that asks for more is read\n"
    "up to that point, with a warning. Exit codes: 0 done, 2 bad usage or FILE is not an rsrmem\n"
    "capture (or of an unknown version), 3 FILE missing, unreadable or not a regular file, or\n"
    "the output cannot be created.\n";

int usage_error(const std::string& message) {
  std::cerr << "rsrmemctl: " << message << "\nRun 'rsrmemctl --help' for usage.\n";
  return kExitUsage;
}

int dispatch(int argc, const char* const* argv) {
  const SplitCommandLine split = split_at_double_dash(argc, argv);

  CLI::App app{"rsrmemctl: launch services under librsrmem.so and query the monitored ones",
               "rsrmemctl"};
  app.footer(std::string(kFooter) + kExitCodeHelp);
  app.set_version_flag("--version", RSR_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global options are accepted after the subcommand too

  int pid = 0;
  std::string socket;
  bool all = false;
  std::string format = "text";
  double timeout_s = 5;
  CLI::Option* pid_opt =
      app.add_option("--pid", pid, "Monitored process to talk to")
          ->type_name("PID")
          ->check(CLI::Range(1, std::numeric_limits<int>::max()).description(""));
  CLI::Option* socket_opt =
      app.add_option("--socket", socket, "Control socket to talk to (instead of --pid)")
          ->type_name("PATH");
  CLI::Option* all_opt = app.add_flag("--all", all, "Every monitored process of this user");
  pid_opt->excludes(socket_opt)->excludes(all_opt);
  socket_opt->excludes(all_opt);
  app.add_option("--format", format, "Output format: text (default) or json")
      ->type_name("text|json")
      ->check(CLI::IsMember({"text", "json"}).description(""));
  app.add_option("--timeout", timeout_s,
                 "Seconds a command may take for each process: connecting, its answer and the "
                 "work on it (default 5); then it gives up with exit 4")
      ->type_name("SECONDS")
      ->transform(seconds_option(0.1, 3600));

  CLI::App* run = app.add_subcommand("run", "Launch a command under the preload");
  std::string env_file;
  run->add_option("--env-file", env_file,
                  "KEY=VALUE settings for the command, overriding the environment (see "
                  "scripts/env.template)")
      ->type_name("FILE");
  // `run ./svc --port 8080` also works without "--". No fallthrough: CLI11 would hand the
  // command's words to the parent (an error) before treating them as the prefix command.
  run->prefix_command();
  run->fallthrough(false);
  std::string push_gateway;
  double push_interval_s = 0;
  run->add_option("--push-gateway", push_gateway,
                  "Push the command's metrics to this Pushgateway while it runs, and once more "
                  "with its exit status after it exits")
      ->type_name("URL");
  std::string run_pyroscope;
  run->add_option("--pyroscope", run_pyroscope,
                  "Push the command's heap profile to this Grafana Pyroscope while it runs")
      ->type_name("URL");
  run->add_option("--push-interval", push_interval_s,
                  "Seconds between pushes (default: RSR_MEMORY_METRICS_UPDATE_INTERVAL as the "
                  "command sees it, else 10)")
      ->type_name("SECONDS")
      ->transform(seconds_option(0.1, 86400));
  run->footer(
      "Usage: rsrmemctl run [--env-file F] [--push-gateway URL] [--pyroscope URL] "
      "[--push-interval S] -- CMD ARGS...");

  CLI::App* list =
      app.add_subcommand("list", "Monitored processes: pid, uptime, heap, RSS, command");
  CLI::App* status = app.add_subcommand(
      "status", "Effective configuration, sampling, tracker overhead, profilers, socket");
  CLI::App* health = app.add_subcommand("health-check", "Component status; exit 1 when degraded");
  bool verbose = false;
  health->add_flag("--verbose,-v", verbose, "Show each component's detail");
  CLI::App* summary = app.add_subcommand(
      "memory-summary", "RSS, heap, rates, and the top call sites by live bytes and by growth");
  SummaryOptions summary_options;
  summary->add_option("--top", summary_options.top, "Call sites per list, 0-1000 (default 20)")
      ->type_name("N")
      ->check(CLI::Range(0, 1000).description(""));
  summary
      ->add_option("--frames", summary_options.frames,
                   "Frames shown per call site in text output; 0 for all (default 8)")
      ->type_name("N")
      ->check(CLI::Range(0, 1024).description(""));
  CLI::App* heap = app.add_subcommand(
      "heap-profile", "Write the sampled heap profile now (pprof or folded stacks)");
  HeapProfileOptions heap_options;
  heap->add_option("-o,--output", heap_options.output,
                   "File to write (default: JOB.PID.heap.pb.gz here, folded to stdout; - for "
                   "stdout); with --all a directory (default: here)")
      ->type_name("OUT");
  heap->add_option("--format", heap_options.format, "pprof (default) or folded")
      ->type_name("pprof|folded")
      ->check(CLI::IsMember({"pprof", "folded"}).description(""));
  heap->add_option("--kind", heap_options.kind,
                   "inuse (default: what is live now) or alloc (everything allocated since "
                   "start): pprof's default sample type, folded's value")
      ->type_name("inuse|alloc")
      ->check(CLI::IsMember({"inuse", "alloc"}).description(""));
  heap->footer(kHeapProfileHelp);
  CLI::App* top = app.add_subcommand(
      "top", "Live view: RSS, heap, rates, leak indicators and the top call sites, refreshed");
  TopOptions top_options;
  top->add_option("--interval", top_options.interval_s, "Seconds between refreshes (default 2)")
      ->type_name("S")
      ->transform(seconds_option(0.2, 3600));
  top->footer(
      "Keys: q quit, p pause, l / g / a sort by live bytes / growth / allocated bytes, r refresh "
      "now.\nWhen stdout is not a terminal, prints one frame and exits.");
  CLI::App* update = app.add_subcommand("update-metrics", "Refresh every gauge now");
  CLI::App* metrics = app.add_subcommand(
      "metrics", "Print the Prometheus text exposition of the targeted processes");
  metrics->footer(kMetricsHelp);
  CLI::App* serve =
      app.add_subcommand("serve", "HTTP exporter: /metrics and /debug/pprof/ heap profiles of the "
                                  "targeted processes");
  ServeOptions serve_options;
  serve
      ->add_option("--listen", serve_options.listen,
                   "ADDRESS:PORT to listen on (default 127.0.0.1:9464; port 0: any free one)")
      ->type_name("ADDR");
  serve->footer(kServeHelp);
  CLI::App* push = app.add_subcommand("push", "Push the targeted processes' metrics to a "
                                              "Pushgateway and/or their heap profiles to "
                                              "Pyroscope, once or repeatedly");
  PushOptions push_options;
  push->add_option("--gateway", push_options.gateway,
                   "Pushgateway URL for the metrics, e.g. http://host:9091")
      ->type_name("URL");
  push->add_option("--pyroscope", push_options.pyroscope,
                   "Grafana Pyroscope URL for the heap profiles, e.g. http://host:4040")
      ->type_name("URL");
  push->add_option("--job", push_options.job,
                   "Job name of the grouping key (default: each process's service name)")
      ->type_name("J");
  push->add_option("--interval", push_options.interval_s,
                   "Push every S seconds until SIGINT/SIGTERM (default: once)")
      ->type_name("S")
      ->transform(seconds_option(0.1, 86400));
  push->footer(kPushHelp);
  CLI::App* leaks = app.add_subcommand(
      "check-leaks", "Run leak detection now; exit 1 when leak indicators are found");
  LeakOptions leak_options;
  leaks->add_flag("--verbose,-v", leak_options.verbose,
                  "Show each call site's full stack and levels, and the history");
  leaks->footer(kCheckLeaksHelp);

  CLI::App* start_profiling = app.add_subcommand(
      "start-profiling", "Start a timed profiling capture of every allocation and free");
  std::string duration_text;
  start_profiling
      ->add_option("--duration", duration_text,
                   "Minutes (10, 0.5), or with units: 30s, 2m, 25h, 1h30m; 1 second to 7 days")
      ->type_name("MIN")
      ->required();
  start_profiling->footer(kStartProfilingHelp);
  CLI::App* stop_profiling = app.add_subcommand(
      "stop-profiling", "Stop a profiling capture, or list the active ones");
  std::string profile_id;
  stop_profiling
      ->add_option("--profile-id", profile_id,
                   "Capture to stop, e.g. background_1764400000 (as start-profiling printed)")
      ->type_name("ID");
  stop_profiling->footer(kStopProfilingHelp);
  CLI::App* cleanup = app.add_subcommand("cleanup-profiles", "Delete old capture files");
  CleanupOptions cleanup_options;
  cleanup
      ->add_option("--days", cleanup_options.days,
                   "Remove captures older than N days; 0 removes all (default "
                   "RSR_PROFILING_CLEANUP_DAYS, else 7)")
      ->type_name("N")
      ->check(CLI::Range(0.0, 36500.0).description(""));
  cleanup
      ->add_option("--dir", cleanup_options.dir,
                   "Capture directory (default RSR_PROFILING_OUTPUT_DIR, else "
                   "/tmp/rsr_memory_profiles)")
      ->type_name("DIR");
  cleanup->footer(kCleanupHelp);

  auto count_option = [](CLI::App* sub, const char* name, int& value, const char* help) {
    sub->add_option(name, value, help)->type_name("N")->check(CLI::Range(0, 100000).description(""));
  };
  ReportOptions report;
  bool view_leaks = false, view_temporary = false;
  auto report_command = [&](const char* name, const char* description) {
    CLI::App* sub = app.add_subcommand(name, description);
    sub->add_option("FILE", report.file, "Capture file (.bin)")->required();
    CLI::Option* l =
        sub->add_flag("--leaks", view_leaks, "Only what was still live when the capture ended");
    CLI::Option* t = sub->add_flag("--temporary", view_temporary,
                                   "Only temporary allocations (freed by the same thread before "
                                   "it allocated anything else)");
    l->excludes(t);
    sub->footer(kReportHelp);
    return sub;
  };
  CLI::App* profile_summary = report_command(
      "summary", "Capture report: totals, peak, duration, threads, top functions by bytes");
  count_option(profile_summary, "--top", report.top, "Functions listed, 0 for all (default 10)");
  CLI::App* profile_stats = report_command(
      "stats", "Capture report: size histogram, top allocators by count and bytes, threads");
  count_option(profile_stats, "--top", report.top, "Allocators listed, 0 for all (default 10)");
  CLI::App* profile_table = report_command(
      "table", "Capture report: one row per allocating function and line, largest first");
  count_option(profile_table, "--top", report.top, "Rows shown, 0 for all (default 10)");
  CLI::App* profile_diff = app.add_subcommand(
      "diff", "Compare two captures: what grew, what is new, what shrank, by function and line");
  profile_diff->add_option("BASE", report.base, "The capture compared against (.bin)")->required();
  profile_diff->add_option("NEW", report.file, "The newer capture (.bin)")->required();
  {
    CLI::Option* l = profile_diff->add_flag("--leaks", view_leaks, "Compare what was still live at each end");
    CLI::Option* t = profile_diff->add_flag("--temporary", view_temporary, "Compare temporary allocations");
    l->excludes(t);
  }
  count_option(profile_diff, "--top", report.top, "Rows shown on each side, 0 for all (default 10)");
  profile_diff
      ->add_option("--as", report.diff_as,
                   "table (default), tree (the call trees of what grew and of what shrank) or flamegraph "
                   "(a page of what grew)")
      ->type_name("FORM")
      ->check(CLI::IsMember({"table", "tree", "flamegraph"}).description(""));
  profile_diff->add_option("-o,--output", report.output, "--as flamegraph: the page's file (default NEW-diff.html)")
      ->type_name("FILE");
  count_option(profile_diff, "--depth", report.depth, "--as tree: levels shown, 0 for all (default all)");
  profile_diff
      ->add_option("--threshold", report.threshold, "--as tree: hide calls below this percent (default 1)")
      ->type_name("PERCENT")
      ->check(CLI::Range(0.0, 100.0).description(""));
  profile_diff->footer(kReportHelp);
  CLI::App* profile_tree =
      report_command("tree", "Capture report: the call tree from the root with bytes and share");
  count_option(profile_tree, "--depth", report.depth, "Levels shown, 0 for all (default all)");
  profile_tree
      ->add_option("--threshold", report.threshold,
                   "Hide calls below this percent of the view's bytes (default 1)")
      ->type_name("PERCENT")
      ->check(CLI::Range(0.0, 100.0).description(""));
  CLI::App* profile_flamegraph = report_command(
      "flamegraph", "Capture report: one self-contained interactive HTML flame graph");
  profile_flamegraph
      ->add_option("-o,--output", report.output,
                   "HTML file to write (default: FILE with .html instead of .bin, -leaks.html or "
                   "-temporary.html for those views; - for stdout)")
      ->type_name("OUT");
  CLI::App* profile_export =
      report_command("export", "Export a capture as pprof (profile.proto, gzipped) or folded stacks");
  profile_export->add_option("--format", report.export_format, "pprof or folded")
      ->type_name("pprof|folded")
      ->required()
      ->check(CLI::IsMember({"pprof", "folded"}).description(""));
  profile_export
      ->add_option("-o,--output", report.output,
                   "File to write (default: pprof to FILE with .pb.gz instead of .bin, "
                   "-leaks.pb.gz or -temporary.pb.gz for those views; folded to stdout; - for "
                   "stdout)")
      ->type_name("OUT");
  profile_export->add_flag("--count", report.by_count,
                           "folded: allocations instead of bytes as the value");

  std::vector<const char*> cli_argv;
  for (const std::string& a : split.options) cli_argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cli_argv.size()), cli_argv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // CLI11 reports an unknown command word as "A subcommand is required"; name it instead.
    if (app.get_subcommands().empty() && !app.remaining().empty())
      return usage_error("unknown command '" + app.remaining().front() + "'");
    return usage_error(e.what());
  }

  if (run->parsed()) {
    if (*pid_opt || *socket_opt || *all_opt)
      return usage_error("run launches a new process; --pid, --socket and --all do not apply");
    if (push_interval_s > 0 && push_gateway.empty() && run_pyroscope.empty())
      return usage_error("--push-interval needs --push-gateway URL or --pyroscope URL");
    RunOptions options{env_file, run->remaining(), push_gateway, run_pyroscope, push_interval_s};
    if (!options.command.empty() && !split.command.empty())
      return usage_error("give the command once, after '--'");
    if (options.command.empty()) options.command = split.command;
    if (options.command.empty())
      return usage_error("run needs a command: rsrmemctl run [--env-file F] -- CMD ARGS...");
    return run_command(options);
  }
  if (split.has_separator)
    return usage_error("'--' is only used by run: rsrmemctl run [--env-file F] -- CMD ARGS...");

  const Io io{std::cout, std::cerr};
  if (view_leaks) report.view = ProfileView::kLeaks;
  if (view_temporary) report.view = ProfileView::kTemporary;
  const bool targets_given = *pid_opt || *socket_opt || *all_opt;
  for (CLI::App* sub : {profile_summary, profile_stats, profile_table, profile_diff, profile_tree,
                        profile_flamegraph, profile_export, cleanup}) {
    if (sub->parsed() && targets_given)
      return usage_error(sub->get_name() + " works on files; --pid, --socket and --all do not "
                                           "apply");
  }
  if (profile_flamegraph->parsed()) return cmd_profile_flamegraph(report, io);
  if (profile_export->parsed()) return cmd_profile_export(report, io);

  GlobalOptions g;
  g.format = format == "json" ? OutputFormat::kJson : OutputFormat::kText;
  g.timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));
  g.target.dir = default_socket_dir();
  if (*pid_opt) {
    g.target.mode = TargetMode::kPid;
    g.target.pid = pid;
  } else if (*socket_opt) {
    g.target.mode = TargetMode::kSocket;
    g.target.socket = socket;
  } else if (all) {
    g.target.mode = TargetMode::kAll;
  }

  // Commands that query processes and then end are bounded by --timeout, the work on their
  // replies included (watchdog.h).
  for (CLI::App* sub : {list, status, health, summary, heap, update, leaks, metrics,
                        start_profiling, stop_profiling})
    if (sub->parsed()) watchdog::arm(g.timeout);

  if (list->parsed()) return cmd_list(g, io);
  if (status->parsed()) return cmd_status(g, io);
  if (health->parsed()) return cmd_health(g, verbose, io);
  if (summary->parsed()) return cmd_memory_summary(g, summary_options, io);
  if (heap->parsed()) return cmd_heap_profile(g, heap_options, io);
  if (top->parsed()) return cmd_top(g, top_options, io);
  if (update->parsed()) return cmd_update_metrics(g, io);
  if (leaks->parsed()) return cmd_check_leaks(g, leak_options, io);
  if (metrics->parsed()) return cmd_metrics(g, io);
  if (serve->parsed()) return cmd_serve(g, serve_options, io);
  if (push->parsed()) return cmd_push(g, push_options, io);
  if (start_profiling->parsed())
    return cmd_start_profiling(g, parse_profiling_duration(duration_text), io);
  if (stop_profiling->parsed()) return cmd_stop_profiling(g, profile_id, io);
  if (cleanup->parsed()) return cmd_cleanup_profiles(g, cleanup_options, io);
  if (profile_summary->parsed()) return cmd_profile_summary(g, report, io);
  if (profile_stats->parsed()) return cmd_profile_stats(g, report, io);
  if (profile_table->parsed()) return cmd_profile_table(g, report, io);
  if (profile_diff->parsed()) return cmd_profile_diff(g, report, io);
  if (profile_tree->parsed()) return cmd_profile_tree(g, report, io);
  return usage_error("no command given");
}

}  // namespace

int main(int argc, char** argv) {
  // Once, before any thread: `run` may push metrics and profiles from two threads at once, and
  // curl_easy_init() initializes libcurl lazily without a lock in older libcurl.
  curl_global_init(CURL_GLOBAL_DEFAULT);
  try {
    return dispatch(argc, argv);
  } catch (const CtlError& e) {
    std::cerr << "rsrmemctl: " << e.what() << '\n';
    return e.code();
  } catch (const nlohmann::json::exception& e) {
    std::cerr << "rsrmemctl: unexpected reply: " << e.what() << '\n';
    return kExitConnection;
  } catch (const std::exception& e) {
    std::cerr << "rsrmemctl: " << e.what() << '\n';
    return kExitNegative;
  }
}
