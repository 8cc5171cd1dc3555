// `rsrmemctl serve`'s /debug/pprof/ pages: Go's names and parameters, for `go tool pprof
// http://HOST:9464/debug/pprof/heap?pid=PID`, Alloy's pyroscope.scrape and Parca.
//
//   /debug/pprof/            an HTML index: every served process with links to its profiles
//   /debug/pprof/heap        the heap profile (heap_profile.h), inuse_space by default
//   /debug/pprof/allocs      the same profile, alloc_space by default
// Parameters: pid=N chooses the process (optional when exactly one is served); seconds=N (1 to
// 3600) answers with the delta between a reading now and one N seconds later (allocations over
// the span, the change of what is in use), as Go does; debug=1 answers folded stacks as text
// instead of the gzipped profile.proto. Other Go parameters (gc) are accepted and ignored.
//
// Thread-safe: civetweb calls from several threads. Each process's symbolizer is kept while its
// module map stays the same; a delta's wait holds no lock.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "commands.h"
#include "heap_profile.h"
#include "site_stacks.h"

namespace rsr::ctl {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string disposition;  // Content-Disposition, when not empty
};

class PprofPages {
 public:
  explicit PprofPages(GlobalOptions g);
  ~PprofPages();
  // `path` below /debug/pprof (e.g. "/debug/pprof/heap"), `query` the request's parameters.
  HttpReply get(const std::string& path, const std::map<std::string, std::string>& query);
  // Ends the deltas being waited for (503) and refuses new ones: the server is stopping.
  void stop();

 private:
  HttpReply index();
  HttpReply profile(HeapKind kind, const std::map<std::string, std::string>& query);
  HeapProfile read(const Target& target);

  const GlobalOptions g_;
  std::mutex mu_;  // symbolizers_, and the symbolizers' caches
  ProcessSymbolizers symbolizers_;
  // Deltas hold a server thread for their span: at most kMaxDeltas at once, so that /metrics
  // and plain profiles keep threads to run on; stop() wakes them.
  static constexpr int kMaxDeltas = 2;
  std::mutex wait_mu_;
  std::condition_variable wake_;
  int deltas_ = 0;
  bool stopping_ = false;
};

}  // namespace rsr::ctl
