// A small service to watch under the preload (scripts/demo): a request loop with a bounded cache,
// short-lived per-request buffers, a background worker thread, and a session registry that is
// never pruned, so its call site keeps growing the way a real leak does.
//
//   rsrmem-demo-service [--requests-per-second N] [--seconds S]   (S = 0: run until killed)
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <unistd.h>

namespace {

std::atomic<bool> g_stop{false};

struct Session {
  std::string user;
  std::vector<char> scratch;
};

// The leak: every request registers a session and nothing ever removes it.
class SessionRegistry {
 public:
  __attribute__((noinline)) void remember(int id) {
    auto s = std::make_unique<Session>();
    s->user = "user-" + std::to_string(id);
    s->scratch.resize(2048);
    sessions_.emplace(id, std::move(s));
  }
  size_t size() const { return sessions_.size(); }

 private:
  std::map<int, std::unique_ptr<Session>> sessions_;
};

// A bounded LRU cache: fills up, then stays the same size.
class ResponseCache {
 public:
  explicit ResponseCache(size_t capacity) : capacity_(capacity) {}
  __attribute__((noinline)) const std::string& get(int key) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    order_.emplace_front(key, std::string(4096, static_cast<char>('a' + key % 26)));
    index_[key] = order_.begin();
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }

 private:
  size_t capacity_;
  std::list<std::pair<int, std::string>> order_;
  std::unordered_map<int, std::list<std::pair<int, std::string>>::iterator> index_;
};

__attribute__((noinline)) size_t handle_request(int id, ResponseCache& cache, SessionRegistry& registry) {
  std::vector<std::string> headers;
  for (int i = 0; i < 8; ++i) headers.push_back("X-Header-" + std::to_string(i) + ": " + std::to_string(id * i));
  std::string body = cache.get(id % 512);
  std::vector<int> parsed(body.size() / 16);
  for (size_t i = 0; i < parsed.size(); ++i) parsed[i] = body[i] + static_cast<int>(i);
  if (id % 4 == 0) registry.remember(id);
  return headers.size() + parsed.size();
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
  ResponseCache cache(256);
  SessionRegistry registry;
  std::thread worker(background_worker);
  const auto start = std::chrono::steady_clock::now();
  size_t checksum = 0;
  int id = 0;
  std::printf("demo service pid %d serving %ld requests/s\n", static_cast<int>(getpid()), rate);
  std::fflush(stdout);
  while (!g_stop.load()) {
    for (long i = 0; i < rate / 100; ++i) checksum += handle_request(id++, cache, registry);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (seconds > 0 && std::chrono::steady_clock::now() - start > std::chrono::duration<double>(seconds)) break;
  }
  g_stop.store(true);
  worker.join();
  std::printf("served %d requests, %zu sessions, checksum %zu\n", id, registry.size(), checksum);
  return 0;
}
