#include "metrics_push.h"

#include <curl/curl.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <memory>

#include "commands.h"
#include "errors.h"
#include "metrics_exposition.h"

namespace rsr::ctl {
namespace {

constexpr std::chrono::milliseconds kFirstAnswerRetry{250};
constexpr std::chrono::milliseconds kPushTimeout{10000};

size_t collect_body(char* data, size_t size, size_t n, void* out) {
  std::string& s = *static_cast<std::string*>(out);
  if (s.size() < 4096) s.append(data, std::min<size_t>(size * n, 4096 - s.size()));
  return size * n;
}

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

GatewayAddress parse_gateway_url(const std::string& url) {
  return parse_http_url(url, "Pushgateway", "http://127.0.0.1:9091");
}

GatewayAddress parse_http_url(const std::string& url, const std::string& what,
                              const std::string& example) {
  const auto bad_url = [&](const std::string& u, const std::string& why) {
    return CtlError(kExitUsage, "bad " + what + " URL '" + u + "': " + why +
                                    " (expected http://HOST:PORT, e.g. " + example + ")");
  };
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw bad_url(url, "no http:// or https:// scheme");
  std::string scheme = url.substr(0, scheme_end);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https")
    throw bad_url(url, "scheme '" + scheme + "' is not http or https");
  const std::string rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string::npos)
    throw bad_url(url, "a query or fragment has no meaning here");
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (authority.find('@') != std::string::npos)
    throw bad_url(url, "credentials in the URL are not supported");
  std::string host = authority, port;
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (!all_digits(port) || port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535)
      throw bad_url(url, "port '" + port + "' is not a number from 1 to 65535");
  } else {
    port = scheme == "https" ? "443" : "80";
  }
  if (host.empty() || host == "[]") throw bad_url(url, "no host");
  for (char c : host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string("-._[]:").find(c) !=
                                                             std::string::npos))
      throw bad_url(url, std::string("character '") + c + "' in the host");
  return GatewayAddress{url, scheme + "://" + host, port + path};
}

std::string percent_encode(const std::string& value) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string base64url(const std::string& value) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < value.size(); i += 3) {
    const uint32_t n = (static_cast<unsigned char>(value[i]) << 16) |
                       (static_cast<unsigned char>(value[i + 1]) << 8) |
                       static_cast<unsigned char>(value[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(n >> shift) & 63];
  }
  const size_t left = value.size() - i;
  if (left > 0) {
    uint32_t n = static_cast<unsigned char>(value[i]) << 16;
    if (left == 2) n |= static_cast<unsigned char>(value[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += left == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::pair<std::string, std::string> grouping_segment(const std::string& name,
                                                     const std::string& value) {
  if (value.empty()) return {name + "@base64", "="};  // the Pushgateway's form of ""
  if (value.find('/') != std::string::npos) return {name + "@base64", base64url(value)};
  return {name, percent_encode(value)};
}

std::string encoded_job(const std::string& job) {
  if (job.empty()) throw CtlError(kExitUsage, "the Pushgateway job name may not be empty");
  if (job.find('/') != std::string::npos)
    throw CtlError(kExitUsage, "the Pushgateway job name '" + job +
                                   "' holds '/', which the grouping key cannot carry; choose "
                                   "another with --job");
  return percent_encode(job);
}

void http_exchange(void* handle, std::chrono::milliseconds timeout, const std::string& doing,
                   const std::string& refusal) {
  CURL* curl = static_cast<CURL*>(handle);
  std::string body;
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) throw CtlError(kExitConnection, "could not " + doing + ": " + curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) return;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  throw CtlError(kExitConnection, refusal + ": HTTP status " + std::to_string(status) +
                                      (body.empty() ? "" : ": " + body.substr(0, 300)));
}

void push_group(const GatewayAddress& gateway, const std::string& job, const std::string& instance,
                const std::vector<prometheus::MetricFamily>& families) {
  const auto [name, value] = grouping_segment("instance", instance);
  const std::string url = gateway.host + ":" + gateway.port + "/metrics/job/" + encoded_job(job) + "/" + name + "/" + value;
  const std::string body = prometheus::TextSerializer().Serialize(families);
  const std::string group = "job=\"" + job + "\", instance=\"" + instance + "\"";
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) throw CtlError(kExitConnection, "curl could not start");
  std::unique_ptr<curl_slist, CurlFree> headers(
      curl_slist_append(nullptr, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, "PUT");  // PUT replaces the group
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  http_exchange(curl.get(), kPushTimeout, "push to the Pushgateway at " + gateway.url + " (group " + group + ")",
                "the Pushgateway at " + gateway.url + " refused the push (group " + group + ")");
}

RunPusher::RunPusher(Settings settings) : settings_(std::move(settings)) {
  thread_ = std::thread([this] { loop(); });
}

RunPusher::~RunPusher() { stop(); }

void RunPusher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RunPusher::report(const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (message == last_report_) return;
  last_report_ = message;
  std::cerr << "rsrmemctl: " << message << std::endl;
}

void RunPusher::loop() {
  const Client client(settings_.socket, settings_.timeout);
  for (;;) {
    bool answered = false;
    try {
      const Json reply = client.request("metrics");
      answered = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = reply;
      }
      Exposition exposition;
      exposition.add(reply);
      exposition.add_process_state(reply, /*exited=*/false, 0);
      push_group(settings_.gateway, job_of(reply), exposition.instance_of(reply),
                 exposition.families());
    } catch (const CtlError& e) {
      // Until the process has set up its socket, not finding it is expected.
      if (answered || e.code() != kExitNotFound) report(e.what());
    } catch (const std::exception& e) {
      report(std::string("pushing metrics: ") + e.what());
    }
    std::unique_lock<std::mutex> lock(mu_);
    const auto pause = last_ ? settings_.interval : kFirstAnswerRetry;
    if (wake_.wait_for(lock, pause, [this] { return stopping_; })) return;
  }
}

bool RunPusher::finish(int exit_code) && {
  stop();
  Json reply;
  if (last_) {
    reply = *last_;
  } else {
    reply = Json{{"pid", settings_.pid}, {"service", settings_.fallback_job}};
  }
  try {
    Exposition exposition;
    if (last_) exposition.add(reply);
    exposition.add_process_state(reply, /*exited=*/true, exit_code);
    push_group(settings_.gateway, job_of(reply), exposition.instance_of(reply),
               exposition.families());
    return true;
  } catch (const std::exception& e) {
    std::cerr << "rsrmemctl: " << e.what() << std::endl;
    return false;
  }
}

}  // namespace rsr::ctl
