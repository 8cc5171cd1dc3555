// Sending heap profiles to Grafana Pyroscope's ingest API (POST /ingest, format=pprof): the
// request, and the pusher that turns successive readings of a process into what Pyroscope keeps.
//
// Each push is one profile.proto (heap_profile.h) sent as multipart/form-data: the gzipped
// profile in the form file `profile`, and a `sample_type_config` naming the four sample types'
// units and aggregation (allocations summed over time, what is in use averaged), as the ingest
// API documents for pprof data that is not Go's. alloc_* are the allocations since the previous
// push (since the process started for the first), inuse_* what is live now. The application
// name is the process's job (its service name) with labels {hostname, pid}; `from`/`until` span
// the allocations sent.
//
// A push that fails keeps the previous reading, so the next push's allocations cover both spans:
// nothing is lost while Pyroscope is away. Nothing here touches the monitored process beyond
// its heap_profile request.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <thread>

#include "commands.h"
#include "heap_profile.h"
#include "metrics_push.h"
#include "site_stacks.h"

namespace rsr::ctl {

// "http://host:4040[/prefix]"; throws CtlError (kExitUsage) naming what is wrong.
GatewayAddress parse_pyroscope_url(const std::string& url);

// Pyroscope's application name: "job{hostname=...,process=K}", K the process's number among its
// job's on the host (InstanceNames::ordinal: the same across restarts, as the Prometheus series'
// instance). Characters its names and label values do not take become '_'.
std::string pyroscope_name(const std::string& job, const std::string& hostname, int process);

// The sample_type_config form field for rsrmem's four sample types.
std::string pyroscope_sample_type_config();

// POSTs one profile (already gzipped). Throws CtlError (kExitConnection) naming the URL and
// curl's error, or the HTTP status and the start of Pyroscope's answer.
void pyroscope_ingest(const GatewayAddress& address, const std::string& name, double from_s,
                      double until_s, const std::string& profile_gz,
                      std::chrono::milliseconds timeout);

// Pushes the targeted processes' profiles, remembering each process's last pushed reading.
class PyroscopePusher {
 public:
  PyroscopePusher(GatewayAddress address, GlobalOptions g);
  // One round over every targeted process; failures are written to io.err. Returns the exit
  // code (4 when a push failed, 0 otherwise).
  int push_round(Io io);

 private:
  GatewayAddress address_;
  GlobalOptions g_;
  std::string hostname_;
  std::map<pid_t, HeapProfile> last_;  // the last reading pushed, per process
  ProcessSymbolizers symbolizers_;
};

// `rsrmemctl run --pyroscope URL`: pushes the launched process's heap profile every `interval`
// from a thread of its own (the first as soon as the process answers), until destroyed. What
// goes wrong is said on stderr once while it lasts.
class RunProfilePusher {
 public:
  RunProfilePusher(GatewayAddress address, std::string socket, std::chrono::milliseconds interval,
                   std::chrono::milliseconds timeout);
  ~RunProfilePusher();
  RunProfilePusher(const RunProfilePusher&) = delete;
  RunProfilePusher& operator=(const RunProfilePusher&) = delete;

 private:
  void loop(GatewayAddress address, GlobalOptions g);

  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace rsr::ctl
