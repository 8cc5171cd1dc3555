// rsrmemctl: command-line wiring only. Every command lives in its own file (commands_*.cc,
// run.cc); this file declares the flags, maps parse errors to exit code 2 and CtlError to its
// code.
#include <CLI/CLI.hpp>
#include <iostream>
#include <limits>

#include "cmdline.h"
#include "commands.h"
#include "errors.h"
#include "run.h"
#include "target.h"

#ifndef RSR_VERSION
#define RSR_VERSION "unknown"
#endif

namespace {

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
    "Every series carries job (the service name) and instance (<hostname>:<pid>); with --all,\n"
    "every process is in the one exposition, told apart by instance. The process refuses when\n"
    "RSR_PROMETHEUS_METRICS_ENABLED=false (exit 4).\n";

constexpr const char* kServeHelp =
    "Each scrape of http://ADDR/metrics queries the targeted processes afresh (with --all,\n"
    "processes that start or exit are followed); a process that cannot be queried is left out\n"
    "and counted in rsr_exporter_scrape_errors_total. Listens on loopback unless told otherwise\n"
    "(0.0.0.0:9464 for every interface). Runs until SIGINT or SIGTERM, then exits 0; a bad\n"
    "--listen, or one that cannot be bound, exits 2.\n";

constexpr const char* kPushHelp =
    "Each process is its own group, job=J (default: its service name) and\n"
    "instance=<hostname>:<pid>, and each push replaces that group's metrics (HTTP PUT).\n"
    "Once: exit 0 when every push succeeded, 4 when the gateway could not be reached or refused.\n"
    "With --interval: failures are reported and retried; exits 0 on SIGINT or SIGTERM.\n";

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
  app.add_option("--timeout", timeout_s, "Seconds to wait for a process to answer (default 5)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.1, 3600.0).description(""));

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
  run->add_option("--push-interval", push_interval_s,
                  "Seconds between pushes (default: RSR_MEMORY_METRICS_UPDATE_INTERVAL as the "
                  "command sees it, else 10)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.1, 86400.0).description(""));
  run->footer(
      "Usage: rsrmemctl run [--env-file F] [--push-gateway URL [--push-interval S]] -- CMD "
      "ARGS...");

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
  CLI::App* update = app.add_subcommand("update-metrics", "Refresh every gauge now");
  CLI::App* metrics = app.add_subcommand(
      "metrics", "Print the Prometheus text exposition of the targeted processes");
  metrics->footer(kMetricsHelp);
  CLI::App* serve =
      app.add_subcommand("serve", "HTTP /metrics exporter for the targeted processes");
  ServeOptions serve_options;
  serve
      ->add_option("--listen", serve_options.listen,
                   "ADDRESS:PORT to listen on (default 127.0.0.1:9464; port 0: any free one)")
      ->type_name("ADDR");
  serve->footer(kServeHelp);
  CLI::App* push = app.add_subcommand("push", "Push the targeted processes' metrics to a "
                                              "Prometheus Pushgateway, once or repeatedly");
  PushOptions push_options;
  push->add_option("--gateway", push_options.gateway, "Pushgateway URL, e.g. http://host:9091")
      ->type_name("URL")
      ->required();
  push->add_option("--job", push_options.job,
                   "Job name of the grouping key (default: each process's service name)")
      ->type_name("J");
  push->add_option("--interval", push_options.interval_s,
                   "Push every S seconds until SIGINT/SIGTERM (default: once)")
      ->type_name("S")
      ->check(CLI::Range(0.1, 86400.0).description(""));
  push->footer(kPushHelp);
  CLI::App* leaks = app.add_subcommand(
      "check-leaks", "Run leak detection now; exit 1 when leak indicators are found");
  LeakOptions leak_options;
  leaks->add_flag("--verbose,-v", leak_options.verbose,
                  "Show each call site's full stack and levels, and the history");
  leaks->footer(kCheckLeaksHelp);

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
    if (push_interval_s > 0 && push_gateway.empty())
      return usage_error("--push-interval needs --push-gateway URL");
    RunOptions options{env_file, run->remaining(), push_gateway, push_interval_s};
    if (!options.command.empty() && !split.command.empty())
      return usage_error("give the command once, after '--'");
    if (options.command.empty()) options.command = split.command;
    if (options.command.empty())
      return usage_error("run needs a command: rsrmemctl run [--env-file F] -- CMD ARGS...");
    return run_command(options);
  }
  if (split.has_separator)
    return usage_error("'--' is only used by run: rsrmemctl run [--env-file F] -- CMD ARGS...");

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

  const Io io{std::cout, std::cerr};
  if (list->parsed()) return cmd_list(g, io);
  if (status->parsed()) return cmd_status(g, io);
  if (health->parsed()) return cmd_health(g, verbose, io);
  if (summary->parsed()) return cmd_memory_summary(g, summary_options, io);
  if (update->parsed()) return cmd_update_metrics(g, io);
  if (leaks->parsed()) return cmd_check_leaks(g, leak_options, io);
  if (metrics->parsed()) return cmd_metrics(g, io);
  if (serve->parsed()) return cmd_serve(g, serve_options, io);
  if (push->parsed()) return cmd_push(g, push_options, io);
  return usage_error("no command given");
}

}  // namespace

int main(int argc, char** argv) {
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
