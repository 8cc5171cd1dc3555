// Pushing rsrmem's metrics to a Prometheus Pushgateway: the gateway URL, the grouping key, one
// push (an HTTP PUT of prometheus-cpp's text exposition, through curl), and the pusher
// `rsrmemctl run --push-gateway` keeps beside the command it launched.
//
// Each process is its own group, {job, instance} with the instance of InstanceNames (the host,
// the same across runs), and every push replaces the group's metrics (PUT). The grouping key is
// encoded into the URL path: values are percent-encoded, and a label value the path cannot carry
// ('/' or empty) is sent in the Pushgateway's base64 form (name@base64). Pushes carry no
// timestamps.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client.h"

namespace prometheus {
struct MetricFamily;
}

namespace rsr::ctl {

// "http://host:9091[/prefix]" split as prometheus::Gateway wants it: `host` with its scheme,
// `port` followed by the path prefix (the Gateway joins them with ':').
struct GatewayAddress {
  std::string url;   // as given, for messages
  std::string host;  // "http://host"
  std::string port;  // "9091" or "9091/prefix"
};
// Throws CtlError (kExitUsage) naming what is wrong: a scheme other than http/https, no host,
// a bad port, a query or fragment.
GatewayAddress parse_gateway_url(const std::string& url);
// The same checks for any HTTP service (`what` and `example` name it in the errors).
GatewayAddress parse_http_url(const std::string& url, const std::string& what,
                              const std::string& example);

// "my svc" -> "my%20svc": every byte but letters, digits and "-._~:" percent-encoded.
std::string percent_encode(const std::string& value);
// RFC 4648 base64 with the URL-safe alphabet ("-", "_") and padding.
std::string base64url(const std::string& value);

// The grouping-key path segment for one label: {name, percent-encoded value}, or
// {name + "@base64", base64url(value)} when the value holds '/' or is empty.
std::pair<std::string, std::string> grouping_segment(const std::string& name,
                                                     const std::string& value);

// The job as the Pushgateway's path takes it (a job has no base64 form there).
// Throws CtlError (kExitUsage) for an empty job or one holding '/'.
std::string encoded_job(const std::string& job);

// Replaces the group {job, instance} on the gateway with `families` (HTTP PUT of the text
// exposition, through curl: prometheus-cpp's Gateway drops the gateway's answer, and its curl
// handle prints it on the process's stdout). Throws CtlError (kExitConnection) when the gateway
// cannot be reached or refuses the push, naming the URL and curl's error, or the HTTP status and
// what the gateway answered.
void push_group(const GatewayAddress& gateway, const std::string& job, const std::string& instance,
                const std::vector<prometheus::MetricFamily>& families);

// One HTTP exchange on `curl` (its URL and request already set), answered with a 2xx status.
// Throws CtlError (kExitConnection): "could not <doing>: <curl's error>" when no answer came
// within `timeout`; "<refusal>: HTTP status N: <at most 300 bytes of the answer>" for any other
// status.
void http_exchange(void* curl, std::chrono::milliseconds timeout, const std::string& doing,
                   const std::string& refusal);

// `run --push-gateway`: while the launched process runs, fetches its `metrics` every `interval`
// (every 250 ms until the first answer, so a short job is still seen) and pushes them with
// rsr_process_exited 0. finish() stops that and pushes the last figures once more with
// rsr_process_exited 1 and rsr_process_exit_code; a process that never answered is pushed with
// those two series alone, under `fallback_job`.
//
// Owns one thread; the destructor stops it without the final push. Problems are reported on
// stderr, once per distinct message; they never affect the launched process.
class RunPusher {
 public:
  struct Settings {
    GatewayAddress gateway;
    std::chrono::milliseconds interval{10000};
    std::string socket;        // the process's control socket
    pid_t pid = 0;             // the process
    std::string fallback_job;  // job label when no reply arrived
    std::chrono::milliseconds timeout{5000};
  };
  explicit RunPusher(Settings settings);
  ~RunPusher();
  RunPusher(const RunPusher&) = delete;
  RunPusher& operator=(const RunPusher&) = delete;

  // Returns false when the final push failed (the reason is on stderr).
  bool finish(int exit_code) &&;

 private:
  void loop();
  void stop();
  void report(const std::string& message);

  Settings settings_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::optional<Json> last_;  // the last reply that arrived
  std::string last_report_;
  std::thread thread_;
};

}  // namespace rsr::ctl
