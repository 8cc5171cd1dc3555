#include "pyroscope_push.h"

#include <curl/curl.h>

#include <cctype>
#include <cmath>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "errors.h"
#include "metrics_exposition.h"
#include "report_export.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

// A name or label value as Pyroscope takes it: letters, digits and "-._:" kept.
std::string pyroscope_safe(const std::string& s) {
  std::string out = s.empty() ? std::string("unknown") : s;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string("-._:").find(c) == std::string::npos)
      c = '_';
  return out;
}

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};

}  // namespace

GatewayAddress parse_pyroscope_url(const std::string& url) {
  return parse_http_url(url, "Pyroscope", "http://127.0.0.1:4040");
}

std::string pyroscope_name(const std::string& job, const std::string& hostname, int process) {
  return pyroscope_safe(job) + "{hostname=" + pyroscope_safe(hostname) +
         ",process=" + std::to_string(process) + "}";
}

std::string pyroscope_sample_type_config() {
  Json config = Json::object();
  for (const auto& [type, units, aggregation] :
       {std::tuple{"alloc_objects", "objects", "sum"}, std::tuple{"alloc_space", "bytes", "sum"},
        std::tuple{"inuse_objects", "objects", "average"},
        std::tuple{"inuse_space", "bytes", "average"}}) {
    // The values are estimates already scaled by the sampler: Pyroscope must not scale them.
    config[type] = Json{{"units", units}, {"aggregation", aggregation},
                        {"display-name", type}, {"sampled", false}};
  }
  return config.dump();
}

void pyroscope_ingest(const GatewayAddress& address, const std::string& name, double from_s,
                      double until_s, const std::string& profile_gz,
                      std::chrono::milliseconds timeout) {
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) throw CtlError(kExitConnection, "curl could not start");
  char* escaped = curl_easy_escape(curl.get(), name.c_str(), static_cast<int>(name.size()));
  if (!escaped) throw CtlError(kExitConnection, "curl could not encode the name " + name);
  const std::string url = address.host + ":" + address.port + "/ingest?name=" + escaped +
                          "&from=" + std::to_string(static_cast<long long>(std::floor(from_s))) +
                          "&until=" + std::to_string(static_cast<long long>(std::ceil(until_s))) +
                          "&format=pprof&spyName=rsrmem";
  curl_free(escaped);
  std::unique_ptr<curl_mime, CurlFree> form(curl_mime_init(curl.get()));
  curl_mimepart* part = curl_mime_addpart(form.get());
  curl_mime_name(part, "profile");
  curl_mime_filename(part, "profile.pb.gz");
  curl_mime_type(part, "application/octet-stream");
  curl_mime_data(part, profile_gz.data(), profile_gz.size());
  const std::string config = pyroscope_sample_type_config();
  part = curl_mime_addpart(form.get());
  curl_mime_name(part, "sample_type_config");
  curl_mime_filename(part, "sample_type_config.json");
  curl_mime_type(part, "application/json");
  curl_mime_data(part, config.data(), config.size());

  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_MIMEPOST, form.get());
  http_exchange(curl.get(), timeout, "push to Pyroscope at " + address.url + " (" + name + ")",
                "Pyroscope at " + address.url + " refused the profile of " + name);
}

PyroscopePusher::PyroscopePusher(GatewayAddress address, GlobalOptions g)
    : address_(std::move(address)), g_(std::move(g)), hostname_(local_hostname()) {}

int PyroscopePusher::push_round(Io io) {
  std::map<pid_t, HeapProfile> now;
  std::set<pid_t> answered;
  const std::vector<TargetResult> results = collect(g_, [&](const Target& target, const Client& client) {
    const Json reply = client.request(Json{{"cmd", "heap_profile"}});
    const auto pid = static_cast<pid_t>(num(reply, "pid", target.pid));
    now[pid] = read_heap_profile(reply, symbolizers_.get(reply, target.pid));
    answered.insert(pid);
    return Outcome{};
  });
  symbolizers_.keep_only(answered);
  int code = report_failures(g_, io, results);
  InstanceNames names(hostname_);  // numbered in pid order, each round, as a scrape does
  for (auto& [pid, profile] : now) {
    auto last = last_.find(pid);
    // Allocations since the previous push (since the start for the first); in use: now.
    HeapProfile sent = last == last_.end() ? profile : allocations_since(last->second, profile);
    const std::string name = pyroscope_name(profile.job, hostname_, names.ordinal(profile.job, pid));
    try {
      std::string profile_gz;
      try {
        profile_gz = gzip(encode_heap_pprof(sent, HeapKind::kInuse));
      } catch (const std::runtime_error& e) {
        throw CtlError(kExitNegative, std::string("encoding the profile: ") + e.what());
      }
      pyroscope_ingest(address_, name, sent.time_s - sent.duration_s, sent.time_s, profile_gz,
                       g_.timeout);
      last_[pid] = std::move(profile);
      io.out << "Pushed the heap profile of pid " << pid << " to " << address_.url << " as "
             << name << std::endl;
    } catch (const CtlError& e) {
      io.err << "rsrmemctl: " << e.what() << std::endl;
      code = std::max<int>(code, e.code());
    }
  }
  // Processes that are gone are forgotten.
  for (auto it = last_.begin(); it != last_.end();)
    it = now.count(it->first) || pid_alive(it->first) ? std::next(it) : last_.erase(it);
  return code;
}

RunProfilePusher::RunProfilePusher(GatewayAddress address, std::string socket,
                                   std::chrono::milliseconds interval,
                                   std::chrono::milliseconds timeout)
    : interval_(interval) {
  GlobalOptions g;
  g.target.mode = TargetMode::kSocket;
  g.target.socket = std::move(socket);
  g.timeout = timeout;
  thread_ = std::thread([this, address = std::move(address), g] { loop(address, g); });
}

RunProfilePusher::~RunProfilePusher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RunProfilePusher::loop(GatewayAddress address, GlobalOptions g) {
  constexpr std::chrono::milliseconds kFirstAnswerRetry{250};
  PyroscopePusher pusher(std::move(address), std::move(g));
  bool answered = false;
  std::string last_report;
  for (;;) {
    std::ostringstream out, err;
    try {
      pusher.push_round(Io{out, err});
      answered = true;
    } catch (const CtlError& e) {
      // Until the process has set up its socket, not finding it is expected.
      if (answered || e.code() != kExitNotFound) err << "rsrmemctl: " << e.what() << '\n';
    } catch (const std::exception& e) {  // never out of the thread: that would end `run`
      err << "rsrmemctl: pushing heap profiles: " << e.what() << '\n';
    }
    if (!err.str().empty() && err.str() != last_report) std::cerr << err.str() << std::flush;
    last_report = err.str();
    std::unique_lock<std::mutex> lock(mu_);
    if (wake_.wait_for(lock, answered ? interval_ : kFirstAnswerRetry, [this] { return stopping_; }))
      return;
  }
}

}  // namespace rsr::ctl
