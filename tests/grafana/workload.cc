// The service the Grafana end-to-end test (e2e.py) monitors: a request loop that opens scopes,
// uses two caches and leaks a little on every fourth request, plus a background thread, so every
// series the dashboards and alert rules read has data. It reports cache operations, scopes and one
// leak indicator every two seconds through rsrmem's C API.
//
// It uses the API's header (preload/include/rsrmem.h) as a service would; where that header is
// absent, the same calls go through weak declarations of the library's entry points. Without the
// preload the program runs and records nothing.
//
//   rsrmem-grafana-workload [--requests-per-second N] [--seconds S]   (S = 0: until SIGTERM)
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <unistd.h>

#if __has_include("../../preload/include/rsrmem.h")
#include "../../preload/include/rsrmem.h"
namespace rsrmem {
inline int api_version() noexcept { return rsrmem_api_version(); }
}  // namespace rsrmem
#else
#include <cstdint>
#include <string_view>
extern "C" {
__attribute__((weak)) int rsrmem_api_version(void);
__attribute__((weak)) void rsrmem_cache_record(const char* cache, int hit);
__attribute__((weak)) void rsrmem_leak_record(const char* type, const char* severity);
__attribute__((weak)) uint64_t rsrmem_scope_begin(const char* name);
__attribute__((weak)) void rsrmem_scope_end(uint64_t token);
}
namespace rsrmem {
inline int api_version() noexcept { return rsrmem_api_version ? rsrmem_api_version() : 0; }
inline void record_cache_operation(std::string_view op, const char* cache) noexcept {
  if (rsrmem_cache_record) rsrmem_cache_record(cache, op == "hit" ? 1 : 0);
}
inline void record_memory_leak(const char* type, const char* severity) noexcept {
  if (rsrmem_leak_record) rsrmem_leak_record(type, severity);
}
class Scope {
 public:
  explicit Scope(const char* name) noexcept : token_(rsrmem_scope_begin ? rsrmem_scope_begin(name) : 0) {}
  ~Scope() {
    if (token_ && rsrmem_scope_end) rsrmem_scope_end(token_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  uint64_t token_;
};
}  // namespace rsrmem
#endif

namespace {

std::atomic<bool> g_stop{false};

using rsrmem::Scope;

// Grows for as long as the program runs: one entry per fourth request, never removed.
class Registry {
 public:
  __attribute__((noinline)) void remember(int id) {
    auto entry = std::make_unique<std::vector<char>>(1024 + id % 512);
    entries_.emplace(id, std::move(entry));
  }
  size_t size() const { return entries_.size(); }

 private:
  std::map<int, std::unique_ptr<std::vector<char>>> entries_;
};

// A bounded cache: hits once a key has been seen, and forgets everything every 4096 lookups.
class Cache {
 public:
  Cache(const char* name, int keys) : name_(name), keys_(keys) {}
  __attribute__((noinline)) const std::string& get(int id) {
    if (++lookups_ % 4096 == 0) map_.clear();
    const int key = id % keys_;
    auto it = map_.find(key);
    rsrmem::record_cache_operation(it != map_.end() ? "hit" : "miss", name_);
    if (it != map_.end()) return it->second;
    return map_.emplace(key, std::string(2048, static_cast<char>('a' + key % 26))).first->second;
  }

 private:
  const char* name_;
  int keys_;
  long lookups_ = 0;
  std::unordered_map<int, std::string> map_;
};

__attribute__((noinline)) size_t render(const std::string& body, int id) {
  Scope scope("render");
  std::vector<std::string> parts;
  for (int i = 0; i < 4 + id % 8; ++i) parts.push_back(body.substr(0, 64 + 256 * i));
  size_t n = 0;
  for (const auto& p : parts) n += p.size();
  return n;
}

__attribute__((noinline)) size_t handle_request(int id, Cache& pages, Cache& sessions, Registry& registry) {
  Scope scope("handle_request");
  std::vector<std::string> headers;
  for (int i = 0; i < 8; ++i) headers.push_back("X-Header-" + std::to_string(i) + ": " + std::to_string(id));
  const std::string& body = pages.get(id);
  sessions.get(id * 7);
  size_t n = render(body, id);
  if (id % 4 == 0) registry.remember(id);
  return headers.size() + n;
}

void background_worker() {
  while (!g_stop.load()) {
    std::vector<std::unique_ptr<char[]>> batch;
    for (int i = 0; i < 64; ++i) batch.emplace_back(new char[256 + i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int main(int argc, char** argv) {
  long rate = 2000;
  double seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--requests-per-second") == 0) rate = std::atol(argv[i + 1]);
    else if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
  }
  std::signal(SIGTERM, [](int) { g_stop.store(true); });
  std::signal(SIGINT, [](int) { g_stop.store(true); });
  const int api = rsrmem::api_version();
  std::printf("workload pid %d, rsrmem C API version %d\n", static_cast<int>(getpid()), api);
  std::fflush(stdout);

  Cache pages("pages", 512);
  Cache sessions("sessions", 8192);
  Registry registry;
  std::thread worker(background_worker);
  const auto start = std::chrono::steady_clock::now();
  auto next_leak = start;
  size_t checksum = 0;
  int id = 0;
  while (!g_stop.load()) {
    for (long i = 0; i < rate / 100; ++i) checksum += handle_request(id++, pages, sessions, registry);
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_leak) {
      rsrmem::record_memory_leak("planted", "medium");
      next_leak = now + std::chrono::seconds(2);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (seconds > 0 && now - start > std::chrono::duration<double>(seconds)) break;
  }
  g_stop.store(true);
  worker.join();
  std::printf("served %d requests, %zu entries, checksum %zu\n", id, registry.size(), checksum);
  return 0;
}
