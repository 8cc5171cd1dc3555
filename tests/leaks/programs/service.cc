// A service in miniature with one planted leak, for the leak-detection tests.
//
//   register_session  the leak: every new session goes into a registry that is never pruned
//                     (a std::map of heap objects, each holding a 2 KiB state buffer)
//   cache_lookup      a bounded LRU cache (2000 x 4 KiB) that fills in ~1.5 s, then plateaus
//                     and turns over (~10% misses, each evicting the least recently used entry)
//   handle_request    request-like temporaries around each cache lookup
//   churn_worker      two threads of temporary churn, with multi-megabyte bursts held briefly
//
// Usage: service [lookups_per_s]   (default 1333: the cache fills in ~1.5 s)
// stdout: "ready <pid>" once the churn threads run; "cache_full <entries> <bytes>" when the cache
//         first reaches capacity; "leaking <sessions_per_s> <state_usable_bytes>" when the leak
//         starts (state_usable_bytes: usable size of one state buffer, the biggest leaking site).
// stdin:  "leak [state_bytes_per_s]" starts the leak (default 262144: 128 sessions/s);
//         "quit" or EOF stops the program (exit 0).
#include <poll.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <sstream>

#include "workload.h"

namespace {

constexpr size_t kStateBytes = 2048;
constexpr double kDefaultLeakBytesPerS = 256 * 1024;

struct Session {
  uint64_t id;
  std::string user;
  std::vector<char> state;
};

// The planted leak: sessions are registered and never removed.
std::map<uint64_t, std::unique_ptr<Session>> g_sessions;

__attribute__((noinline)) void register_session(uint64_t id) {
  auto s = std::make_unique<Session>();
  s->id = id;
  s->user = "u" + std::to_string(id % 100000);
  s->state.assign(kStateBytes, static_cast<char>(id));
  g_sessions.emplace(id, std::move(s));
}

// Reads whatever stdin has within `timeout_ms` and returns complete lines; sets *eof.
std::vector<std::string> read_commands(std::string* pending, int timeout_ms, bool* eof) {
  std::vector<std::string> lines;
  pollfd pfd{0, POLLIN, 0};
  if (poll(&pfd, 1, timeout_ms) > 0) {
    char buf[256];
    const ssize_t k = read(0, buf, sizeof buf);
    if (k <= 0) {
      *eof = true;
    } else {
      pending->append(buf, static_cast<size_t>(k));
    }
  }
  for (size_t nl; (nl = pending->find('\n')) != std::string::npos;) {
    lines.push_back(pending->substr(0, nl));
    pending->erase(0, nl + 1);
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  const double lookups_per_s = argc > 1 ? std::atof(argv[1]) : 1333;
  std::atomic<bool> stop{false};
  std::thread churn_a(wl::churn_worker, &stop, 1u), churn_b(wl::churn_worker, &stop, 2u);
  wl::say("ready " + std::to_string(getpid()));

  wl::LruCache cache(2000, 4096);
  wl::KeyStream keys(7, 0.10);
  std::mt19937 rng(11);
  wl::Pacer requests;
  wl::Pacer leak;
  double leak_sessions_per_s = 0;
  bool announced_full = false;
  uint64_t next_session = 0;
  std::string pending;
  bool eof = false;
  volatile size_t sink = 0;

  while (!eof) {
    for (const std::string& line : read_commands(&pending, 1, &eof)) {
      std::istringstream in(line);
      std::string word;
      in >> word;
      if (word == "quit") eof = true;
      if (word == "leak" && leak_sessions_per_s == 0) {
        double bytes_per_s = kDefaultLeakBytesPerS;
        in >> bytes_per_s;
        leak_sessions_per_s = bytes_per_s / kStateBytes;
        leak = wl::Pacer();
        // Sessions are registered only from the paced loop below: one call, one stack, one site.
        void* probe = malloc(kStateBytes);
        const size_t usable = malloc_usable_size(probe);
        free(probe);
        wl::say("leaking " + std::to_string(leak_sessions_per_s) + " " + std::to_string(usable));
      }
    }
    for (uint64_t n = requests.due(lookups_per_s); n > 0; --n) sink = sink + wl::handle_request(cache, keys, rng);
    if (!announced_full && cache.full()) {
      announced_full = true;
      wl::say("cache_full " + std::to_string(cache.order.size()) + " " +
              std::to_string(cache.order.size() * cache.value_bytes));
    }
    if (leak_sessions_per_s > 0)
      for (uint64_t n = leak.due(leak_sessions_per_s); n > 0; --n) register_session(next_session++);
  }
  stop = true;
  churn_a.join();
  churn_b.join();
  (void)sink;
  return 0;
}
