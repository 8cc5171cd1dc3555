// Prometheus metric families built from `metrics` replies (common/protocol.md), the one place that
// knows rsrmem's metric names, types, help texts and labels. `rsrmemctl metrics`, `serve`, `push`
// and `run --push-gateway` all expose what this builds.
//
// Every series carries `job` (the reply's service, else its program's base name; or the job a
// push groups under) and `instance`, which stays the same across restarts: the host's name, with
// "/2", "/3", ... for further processes of one job on the host (InstanceNames); the pid is a label
// of rsr_info only. Call sites are named by their first
// user frame, symbolized here (user_frame_label in site_stacks.h, as check-leaks names them);
// sites that end up with the same name are summed, and at most the reply's `top_sites` sites of
// each list are read. Histograms are rebuilt from the reply's per-bucket counts. Series carry no
// timestamps.
//
// An Exposition is a plain value built once per scrape or push (counters are the process's totals
// as read now, not increments), and is not thread-safe.
#pragma once

#include <prometheus/metric_family.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client.h"
#include "symbolizer.h"

namespace prometheus {
class Collectable;
}

namespace rsr::ctl {

struct ExpositionOptions {
  std::string hostname;  // the instance label's host part; empty: this machine's name
  std::string job;       // every series' job label; empty: each reply's own service name
  std::string instance;  // every series' instance label; empty: InstanceNames over `hostname`
};

// Instance labels that stay the same across restarts: `host` for the first process of a job
// asked about, "<host>/2", "<host>/3", ... for the job's next ones (asked in pid order, a job's
// N processes on a host keep N series whatever their pids). The same (job, pid) always gets the
// same name.
class InstanceNames {
 public:
  explicit InstanceNames(std::string host) : host_(std::move(host)) {}
  const std::string& of(const std::string& job, long long pid);
  // The process's number among its job's: 1 for `host`, 2 for "<host>/2", ...
  int ordinal(const std::string& job, long long pid);

 private:
  struct Given {
    int ordinal;
    std::string name;
  };
  const Given& give(const std::string& job, long long pid);

  std::string host_;
  std::map<std::pair<std::string, long long>, Given> given_;
  std::map<std::string, int> per_job_;
};

// The job a reply reports under: its service, else its program's base name, else "rsrmem".
std::string job_of(const Json& reply);

// This machine's name (gethostname), "localhost" when it has none.
std::string local_hostname();

class Exposition {
 public:
  explicit Exposition(ExpositionOptions options = {});
  ~Exposition();
  Exposition(const Exposition&) = delete;
  Exposition& operator=(const Exposition&) = delete;

  // Adds one process's `metrics` reply; its sites are named with `symbolizer`, which must be
  // built over the reply's modules (modules_of in site_stacks.h).
  void add(const Json& reply, Symbolizer& symbolizer);
  // The same with a symbolizer of its own.
  void add(const Json& reply);

  // rsr_process_exited (1 once `reply`'s process has exited, else 0) and, once exited,
  // rsr_process_exit_code: what `run --push-gateway` adds to its pushes.
  void add_process_state(const Json& reply, bool exited, int exit_code);

  // The families in rsrmem's table order; families without series are left out.
  std::vector<prometheus::MetricFamily> families() const;

  // The text exposition format (prometheus::TextSerializer).
  std::string text() const;

  // The instance label of a reply (options.instance, else InstanceNames).
  std::string instance_of(const Json& reply);

 private:
  struct Families;
  // The job label of a reply's series: options.job, else the reply's own (job_of).
  std::string job_for(const Json& reply) const;
  std::map<std::string, std::string> base_labels(const Json& reply);

  ExpositionOptions options_;
  InstanceNames names_;
  std::unique_ptr<Families> families_;
};

}  // namespace rsr::ctl
