// The Prometheus family: `metrics` (the text exposition on stdout), `serve` (an HTTP /metrics
// exporter that queries the targets at each scrape, and their heap profiles under /debug/pprof/)
// and `push` (to a Pushgateway, once or repeatedly). The families themselves come from
// metrics_exposition.h.
//
// serve runs civetweb itself (the server prometheus-cpp's Exposer wraps): the Exposer answers
// only the URIs of registered collectables, and /debug/pprof/ needs handlers of its own.
#include <CivetServer.h>
#include <arpa/inet.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/text_serializer.h>
#include <signal.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <set>

#include "commands.h"
#include "errors.h"
#include "metrics_exposition.h"
#include "metrics_push.h"
#include "pprof_http.h"
#include "pyroscope_push.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

Outcome fetch_metrics(const Target&, const Client& client) {
  return Outcome{kExitOk, client.request("metrics"), ""};
}

// SIGINT and SIGTERM blocked for the object's lifetime (threads started meanwhile inherit the
// mask), so they can be waited for instead of handled.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &previous_);
  }
  ~StopSignals() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // True when a stop signal arrived within `timeout`.
  bool wait_for(std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      timespec ts{static_cast<time_t>(left.count() / 1000000000),
                  static_cast<long>(left.count() % 1000000000)};
      if (sigtimedwait(&set_, nullptr, &ts) > 0) return true;
      if (errno == EAGAIN) return false;
    }
  }
  void wait() const {
    int sig = 0;
    while (sigwait(&set_, &sig) != 0) {
    }
  }

 private:
  sigset_t set_, previous_;
};

// The exporter's view of the targets: every scrape resolves and queries them afresh, so
// processes that start or stop under --all are followed. Scrapes are serialized (civetweb may
// call from several threads); each process's symbolizer is kept while its module map stays the
// same, so a scrape does not re-read debug information.
class ScrapeCollectable : public prometheus::Collectable {
 public:
  ScrapeCollectable(GlobalOptions g, std::ostream& log)
      : g_(std::move(g)),
        log_(log),
        errors_family_("rsr_exporter_scrape_errors_total",
                       "Monitored processes rsrmemctl serve could not query during a scrape.",
                       {}),
        errors_(errors_family_.Add({})) {}

  // civetweb's worker threads run on small stacks, too small for reading DWARF: the scrape runs
  // on a thread of its own with the default stack, and nothing it throws reaches civetweb.
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<prometheus::MetricFamily> out;
    std::string failure;
    std::thread worker([&] {
      try {
        out = collect_locked();
      } catch (const std::exception& e) {
        failure = e.what();
      }
    });
    worker.join();
    if (failure.empty()) return out;
    errors_.Increment();
    if (!reported_.count(failure)) log_ << "rsrmemctl: scrape failed: " << failure << std::endl;
    reported_ = {failure};
    return errors_family_.Collect();
  }

 private:
  std::vector<prometheus::MetricFamily> collect_locked() const {
    std::set<std::string> messages;
    std::vector<TargetResult> results;
    try {
      results = collect(g_, fetch_metrics);
    } catch (const CtlError& e) {
      // --all with no process at all is an empty scrape, not an error.
      if (!(g_.target.mode == TargetMode::kAll && e.code() == kExitNotFound)) {
        errors_.Increment();
        messages.insert(e.what());
      }
    }
    Exposition exposition;
    std::set<pid_t> answered;
    for (const TargetResult& r : results) {
      if (r.state != TargetResult::State::kOk) {
        if (r.state == TargetResult::State::kFailed) errors_.Increment();
        messages.insert(r.message);
        continue;
      }
      const Json& reply = r.outcome.json;
      answered.insert(static_cast<pid_t>(num(reply, "pid", r.target.pid)));
      exposition.add(reply, *symbolizers_.get(reply, r.target.pid));
    }
    symbolizers_.keep_only(answered);
    // Each problem once while it lasts, not at every scrape.
    for (const std::string& m : messages)
      if (!reported_.count(m)) log_ << "rsrmemctl: " << m << std::endl;
    reported_ = std::move(messages);

    std::vector<prometheus::MetricFamily> out = exposition.families();
    for (prometheus::MetricFamily& f : errors_family_.Collect()) out.push_back(std::move(f));
    return out;
  }

  const GlobalOptions g_;
  std::ostream& log_;
  mutable std::mutex mu_;
  prometheus::Family<prometheus::Counter> errors_family_;
  prometheus::Counter& errors_;
  mutable ProcessSymbolizers symbolizers_;
  mutable std::set<std::string> reported_;
};

// Runs `fn` on a thread of its own with the default stack: civetweb's worker threads run on
// small stacks, too small for reading DWARF. Nothing `fn` throws reaches civetweb.
HttpReply on_own_stack(const std::function<HttpReply()>& fn) {
  HttpReply reply;
  std::thread worker([&] {
    try {
      reply = fn();
    } catch (const std::exception& e) {
      reply = HttpReply{500, "text/plain; charset=utf-8", std::string(e.what()) + "\n", ""};
    }
  });
  worker.join();
  return reply;
}

void send(mg_connection* conn, const HttpReply& r) {
  const char* reason = r.status == 200   ? "OK"
                       : r.status == 400 ? "Bad Request"
                       : r.status == 404 ? "Not Found"
                       : r.status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason +
                     "\r\nContent-Type: " + r.content_type +
                     "\r\nContent-Length: " + std::to_string(r.body.size()) +
                     "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  if (!r.disposition.empty()) head += "Content-Disposition: " + r.disposition + "\r\n";
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  mg_write(conn, r.body.data(), r.body.size());
}

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(std::shared_ptr<prometheus::Collectable> collectable)
      : collectable_(std::move(collectable)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    // Collect() runs its own thread for the scrape; serializing needs no large stack.
    HttpReply r;
    try {
      r.body = prometheus::TextSerializer().Serialize(collectable_->Collect());
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    } catch (const std::exception& e) {
      r = HttpReply{500, "text/plain; charset=utf-8", std::string(e.what()) + "\n", ""};
    }
    send(conn, r);
    return true;
  }

 private:
  std::shared_ptr<prometheus::Collectable> collectable_;
};

class PprofHandler : public CivetHandler {
 public:
  explicit PprofHandler(const GlobalOptions& g) : pages_(g) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    const mg_request_info* info = mg_get_request_info(conn);
    const std::string path = info && info->local_uri ? info->local_uri : "/debug/pprof/";
    std::map<std::string, std::string> query;
    for (const char* name : {"pid", "seconds", "debug", "gc"}) {
      std::string value;
      if (CivetServer::getParam(conn, name, value)) query[name] = value;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++active_;
    }
    send(conn, on_own_stack([&] { return pages_.get(path, query); }));
    {
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
    }
    idle_.notify_all();
    return true;
  }
  // Ends the deltas being waited for and lets their answers out (civetweb writes nothing once
  // it is stopping), waiting at most `limit`.
  void stop(std::chrono::milliseconds limit) {
    pages_.stop();
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait_for(lock, limit, [this] { return active_ == 0; });
  }

 private:
  PprofPages pages_;
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;  // requests being answered
};

// Pushes every answering process once; returns the exit code. Failures are on io.err; with
// --format json, stdout gets one object a round: {gateway, pushed: [{pid, job, instance}],
// failed: [{pid, job, instance, error}]}.
int push_round(const GlobalOptions& g, const PushOptions& options, const GatewayAddress& gateway,
               Io io) {
  const std::vector<TargetResult> results = collect(g, fetch_metrics);
  int code = report_failures(g, io, results);
  Json pushed = Json::array(), failed = Json::array();
  InstanceNames names(local_hostname());  // one group per process, the same across restarts
  for (const TargetResult& r : results) {
    if (r.state != TargetResult::State::kOk) continue;
    const Json& reply = r.outcome.json;
    const std::string job = options.job.empty() ? job_of(reply) : options.job;
    const std::string instance = names.of(job, r.target.pid);
    Exposition exposition(ExpositionOptions{"", job, instance});
    exposition.add(reply);
    Json group{{"pid", r.target.pid}, {"job", job}, {"instance", instance}};
    try {
      push_group(gateway, job, instance, exposition.families());
      pushed.push_back(std::move(group));
      if (g.format != OutputFormat::kJson)
        io.out << "Pushed " << process_label(reply, r.target.pid) << " to " << gateway.url
               << " as job=\"" << job << "\", instance=\"" << instance << "\"" << std::endl;
    } catch (const CtlError& e) {
      io.err << "rsrmemctl: " << e.what() << std::endl;
      code = std::max<int>(code, e.code());
      group["error"] = e.what();
      failed.push_back(std::move(group));
    }
  }
  if (g.format == OutputFormat::kJson)
    io.out << Json{{"gateway", gateway.url}, {"pushed", std::move(pushed)}, {"failed", std::move(failed)}}.dump()
           << std::endl;
  return code;
}

}  // namespace

std::string civetweb_listen_address(const std::string& listen) {
  auto bad = [&listen](const std::string& why) {
    return CtlError(kExitUsage, "bad --listen '" + listen + "': " + why +
                                    " (expected ADDRESS:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)");
  };
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) throw bad("no port");
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535)
    throw bad("port '" + port + "' is not a number from 0 to 65535");
  if (host == "localhost") host = "127.0.0.1";
  unsigned char addr[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), addr) != 1)
      throw bad("'" + host + "' is not an IPv6 address");
  } else if (inet_pton(AF_INET, host.c_str(), addr) != 1) {
    throw bad(host.empty() ? std::string("no address (0.0.0.0 listens on every interface)")
                           : "'" + host + "' is not an IPv4 address, [IPv6] address or localhost");
  }
  return host + ":" + port;
}

int cmd_metrics(const GlobalOptions& g, Io io) {
  const std::vector<TargetResult> results = collect(g, fetch_metrics);
  if (g.format == OutputFormat::kJson) return print_results(g, io, results);
  Exposition exposition;
  for (const TargetResult& r : results)
    if (r.state == TargetResult::State::kOk) exposition.add(r.outcome.json);
  io.out << exposition.text();
  return report_failures(g, io, results);
}

int cmd_serve(const GlobalOptions& g, const ServeOptions& options, Io io) {
  const std::string address = civetweb_listen_address(options.listen);
  const StopSignals signals;  // before the server's threads start
  // Four workers: a delta profile (?seconds=N) holds one for its span.
  const std::vector<std::string> civet_options = {"listening_ports", address, "num_threads", "4"};
  // The handlers outlive the server, whose destructor stops its threads.
  MetricsHandler metrics(std::make_shared<ScrapeCollectable>(g, io.err));
  PprofHandler pprof(g);
  std::unique_ptr<CivetServer> server;
  try {
    server = std::make_unique<CivetServer>(civet_options);
  } catch (const std::exception& e) {
    throw CtlError(kExitUsage, "cannot listen on " + options.listen + ": " + e.what());
  }
  server->addHandler("/metrics", metrics);
  server->addHandler("/debug/pprof", pprof);
  const std::vector<int> ports = server->getListeningPorts();
  const std::string host = address.substr(0, address.rfind(':'));
  const std::string base =
      "http://" + host + ":" +
      (ports.empty() ? address.substr(address.rfind(':') + 1) : std::to_string(ports[0]));
  io.err << "rsrmemctl: serving " << base << "/metrics and " << base << "/debug/pprof/"
         << std::endl;
  signals.wait();
  pprof.stop(std::chrono::seconds(3));  // deltas being waited for end now, with a 503
  server->close();
  return kExitOk;
}

int cmd_push(const GlobalOptions& g, const PushOptions& options, Io io) {
  if (options.gateway.empty() && options.pyroscope.empty())
    throw CtlError(kExitUsage, "push needs --gateway URL (metrics), --pyroscope URL (heap "
                               "profiles), or both");
  std::optional<GatewayAddress> gateway;
  if (!options.gateway.empty()) gateway = parse_gateway_url(options.gateway);
  if (!options.job.empty()) encoded_job(options.job);  // refuse a bad --job before pushing
  std::optional<PyroscopePusher> profiles;
  if (!options.pyroscope.empty()) profiles.emplace(parse_pyroscope_url(options.pyroscope), g);
  auto round = [&] {
    int code = kExitOk;
    if (gateway) code = push_round(g, options, *gateway, io);
    if (profiles) code = std::max(code, profiles->push_round(io));
    return code;
  };
  if (options.interval_s <= 0) return round();

  const StopSignals signals;
  const auto interval = std::chrono::milliseconds(static_cast<long long>(options.interval_s * 1000));
  do {
    try {
      round();
    } catch (const CtlError& e) {
      io.err << "rsrmemctl: " << e.what() << std::endl;
    }
  } while (!signals.wait_for(interval));
  return kExitOk;
}

}  // namespace rsr::ctl
