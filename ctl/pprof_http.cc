#include "pprof_http.h"

#include <chrono>
#include <sstream>
#include <thread>

#include "errors.h"
#include "format.h"
#include "report_export.h"
#include "site_stacks.h"

namespace rsr::ctl {

namespace {

HttpReply text(int status, const std::string& body) {
  HttpReply r;
  r.status = status;
  r.body = body + "\n";
  return r;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// A whole decimal number in [lo, hi], or nullopt.
std::optional<long> whole(const std::string& s, long lo, long hi) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const long v = std::stol(s);
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

}  // namespace

PprofPages::PprofPages(GlobalOptions g) : g_(std::move(g)) {}
PprofPages::~PprofPages() = default;

HttpReply PprofPages::get(const std::string& path, const std::map<std::string, std::string>& query) {
  std::string name = path.substr(std::string("/debug/pprof").size());
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  while (!name.empty() && name.back() == '/') name.pop_back();
  try {
    if (name.empty()) return index();
    if (name == "heap") return profile(HeapKind::kInuse, query);
    if (name == "allocs") return profile(HeapKind::kAlloc, query);
  } catch (const CtlError& e) {
    return text(e.code() == kExitNotFound ? 404 : e.code() == kExitUsage ? 400 : 503, e.what());
  }
  return text(404, "no profile named '" + name +
                       "' here: rsrmemctl serves heap and allocs (see /debug/pprof/)");
}

void PprofPages::stop() {
  {
    std::lock_guard<std::mutex> lock(wait_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
}

HttpReply PprofPages::index() {
  std::vector<TargetResult> results;
  try {
    results = collect(g_, [](const Target&, const Client& client) {
      return Outcome{kExitOk, client.request("hello"), ""};
    });
  } catch (const CtlError& e) {
    // --all with no process is an empty table, not an error.
    if (!(g_.target.mode == TargetMode::kAll && e.code() == kExitNotFound)) throw;
  }
  std::ostringstream page;
  page << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>/debug/pprof/</title>"
          "</head>\n<body>\n<h1>/debug/pprof/</h1>\n<p>Heap profiles of the processes under "
          "rsrmem (sampled by the library, read now). Add <code>?seconds=N</code> for the delta "
          "over N seconds, <code>&amp;debug=1</code> for folded stacks as text.</p>\n"
          "<table>\n<tr><th>pid</th><th>service</th><th>program</th><th>up</th><th>mode</th>"
          "<th>profiles</th></tr>\n";
  for (const TargetResult& r : results) {
    if (r.state != TargetResult::State::kOk) {
      if (r.state == TargetResult::State::kFailed)
        page << "<tr><td>" << r.target.pid << "</td><td colspan=\"5\">"
             << html_escape(r.message) << "</td></tr>\n";
      continue;
    }
    const Json& hello = r.outcome.json;
    const std::string pid = std::to_string(static_cast<long long>(num(hello, "pid", r.target.pid)));
    page << "<tr><td>" << pid << "</td><td>" << html_escape(str(hello, "service")) << "</td><td>"
         << html_escape(str(hello, "program")) << "</td><td>"
         << html_escape(human_duration(num(hello, "uptime_s"))) << "</td><td>"
         << html_escape(str(hello, "mode")) << "</td><td><a href=\"/debug/pprof/heap?pid=" << pid
         << "\">heap</a> <a href=\"/debug/pprof/allocs?pid=" << pid
         << "\">allocs</a> <a href=\"/debug/pprof/heap?pid=" << pid
         << "&amp;debug=1\">heap (folded)</a></td></tr>\n";
  }
  page << "</table>\n<p>With Go's pprof: <code>go tool pprof "
          "http://HOST:PORT/debug/pprof/heap?pid=PID</code></p>\n</body></html>\n";
  HttpReply reply;
  reply.content_type = "text/html; charset=utf-8";
  reply.body = page.str();
  return reply;
}

HttpReply PprofPages::profile(HeapKind kind, const std::map<std::string, std::string>& query) {
  long seconds = 0;
  if (auto it = query.find("seconds"); it != query.end()) {
    const auto v = whole(it->second, 1, 3600);
    if (!v) throw CtlError(kExitUsage, "seconds must be a whole number from 1 to 3600");
    seconds = *v;
  }
  bool folded = false;
  if (auto it = query.find("debug"); it != query.end()) folded = it->second != "0";

  std::vector<Target> targets = resolve_targets(g_.target);
  const Target* chosen = nullptr;
  if (auto it = query.find("pid"); it != query.end()) {
    const auto pid = whole(it->second, 1, 2147483647);
    if (!pid) throw CtlError(kExitUsage, "pid must be a process id");
    for (const Target& t : targets)
      if (t.pid == *pid && pid_alive(t.pid)) chosen = &t;
    if (!chosen)
      throw CtlError(kExitNotFound, "no process " + it->second +
                                        " under rsrmem is served here (see /debug/pprof/)");
  } else {
    std::vector<const Target*> alive;
    for (const Target& t : targets)
      if (t.pid <= 0 || pid_alive(t.pid)) alive.push_back(&t);
    if (alive.size() != 1)
      throw CtlError(alive.empty() ? kExitNotFound : kExitUsage,
                     alive.empty() ? std::string("no process under rsrmem is served here")
                                   : std::to_string(alive.size()) +
                                         " processes are served here: choose one with ?pid= "
                                         "(see /debug/pprof/)");
    chosen = alive.front();
  }

  HeapProfile profile;
  if (seconds == 0) {
    profile = read(*chosen);
  } else {
    {
      std::lock_guard<std::mutex> lock(wait_mu_);
      if (stopping_) throw CtlError(kExitConnection, "the server is stopping");
      if (deltas_ >= kMaxDeltas)
        throw CtlError(kExitConnection, std::to_string(kMaxDeltas) +
                                            " delta profiles are being taken: try again when "
                                            "one ends");
      ++deltas_;
    }
    struct Release {
      PprofPages* pages;
      ~Release() {
        std::lock_guard<std::mutex> lock(pages->wait_mu_);
        --pages->deltas_;
      }
    } release{this};
    const HeapProfile base = read(*chosen);
    std::unique_lock<std::mutex> lock(wait_mu_);
    if (wake_.wait_for(lock, std::chrono::seconds(seconds), [this] { return stopping_; }))
      throw CtlError(kExitConnection, "the server is stopping");
    lock.unlock();
    profile = heap_delta(base, read(*chosen));
  }
  HttpReply reply;
  if (folded) {
    std::ostringstream out;
    write_heap_folded(profile, kind, out);
    reply.body = out.str();
    return reply;
  }
  reply.content_type = "application/octet-stream";
  reply.disposition = "attachment; filename=\"profile\"";
  reply.body = gzip(encode_heap_pprof(profile, kind));
  return reply;
}

HeapProfile PprofPages::read(const Target& target) {
  GlobalOptions one = g_;
  one.target.mode = TargetMode::kSocket;
  one.target.socket = target.socket;
  HeapProfile profile;
  const std::vector<TargetResult> results = collect(one, [&](const Target&, const Client& client) {
    const Json reply = client.request(Json{{"cmd", "heap_profile"}});
    std::lock_guard<std::mutex> lock(mu_);
    profile = read_heap_profile(reply, symbolizers_.get(reply, target.pid));
    return Outcome{};
  });
  for (const TargetResult& r : results)
    if (r.state != TargetResult::State::kOk)
      throw CtlError(r.state == TargetResult::State::kGone ? kExitNotFound : kExitConnection,
                     r.message);
  std::lock_guard<std::mutex> lock(mu_);
  symbolizers_.forget_gone();
  return profile;
}

}  // namespace rsr::ctl
