// A program for check-leaks end to end, run under librsrmem.so:
//   ctl-leak-target leak     register_session() keeps every session in a std::map that is never
//                            pruned: about 250 KiB a second for 60 s, then it waits for a signal
//   ctl-leak-target wrapped  store_record() leaks as much through pool_take() and xmalloc(),
//                            allocation wrappers (the site to blame is store_record)
//   ctl-leak-target refill   fills a bounded cache from warm_cache(), then refreshes it from
//                            refresh_cache(): one function's two stacks, their total flat
//   ctl-leak-target steady   fills a bounded cache once, then only allocates and frees; waits
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace {

std::map<int, std::string> g_sessions;
volatile std::sig_atomic_t g_stop = 0;

}  // namespace

// The leak: an entry per session, never erased. (Not static, so it keeps its name.)
__attribute__((noinline)) void register_session(int id) {
  g_sessions.emplace(id, std::string(1000, 'x'));
}

// Allocation wrappers, as code bases have them: xmalloc (a built-in wrapper name) and pool_take
// (named by RSR_ALLOCATOR_WRAPPERS in the test). Their callers are the sites to blame.
extern "C" __attribute__((noinline)) void* xmalloc(size_t n) {
  void* p = std::malloc(n);
  if (!p) std::abort();
  return p;
}
__attribute__((noinline)) void* pool_take(size_t n) { return xmalloc(n); }

std::vector<void*> g_records;
__attribute__((noinline)) void store_record(int id) {
  char* p = static_cast<char*>(pool_take(1000));
  std::memset(p, id, 1000);
  g_records.push_back(p);
}

// A bounded cache filled at start by one caller and refreshed by another: cache_insert is the
// site of both stacks; the refreshing stack grows as the filling one shrinks.
std::deque<char*> g_cache;
__attribute__((noinline)) void cache_insert(int key) {
  char* p = static_cast<char*>(std::malloc(1000));
  std::memset(p, key, 1000);
  g_cache.push_back(p);
  if (g_cache.size() > 8192) {
    std::free(g_cache.front());
    g_cache.pop_front();
  }
}
__attribute__((noinline)) void warm_cache() {
  for (int i = 0; i < 8192; ++i) cache_insert(i);
}
__attribute__((noinline)) void refresh_cache(int key) { cache_insert(key); }

__attribute__((noinline)) void fill_cache(std::vector<std::string>& cache) {
  for (int i = 0; i < 4096; ++i) cache.emplace_back(1000, 'c');
}

int main(int argc, char** argv) {
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  if (argc == 2 && std::strcmp(argv[1], "leak") == 0) {
    int next = 0;
    for (int tick = 0; tick < 3000 && !g_stop; ++tick) {  // 60 s at 50 ticks a second
      for (int k = 0; k < 5; ++k) register_session(next++);
      usleep(20000);
    }
    while (!g_stop) pause();
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "wrapped") == 0) {
    for (int tick = 0; tick < 3000 && !g_stop; ++tick) {  // as `leak`, through two wrappers
      for (int k = 0; k < 5; ++k) store_record(tick);
      usleep(20000);
    }
    while (!g_stop) pause();
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "refill") == 0) {
    warm_cache();
    for (int tick = 0; !g_stop; ++tick) {  // 250 entries a second: the cache turns over in 33 s
      for (int k = 0; k < 5; ++k) refresh_cache(tick);
      usleep(20000);
    }
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "steady") == 0) {
    std::vector<std::string> cache;
    fill_cache(cache);
    while (!g_stop) {  // churn: everything allocated here is freed at once
      std::vector<std::string> scratch(64, std::string(2000, 's'));
      usleep(10000);
    }
    return 0;
  }
  std::fprintf(stderr, "usage: %s leak | steady\n", argv[0]);
  return 2;
}
