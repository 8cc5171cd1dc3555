// A program for check-leaks end to end, run under librsrmem.so:
//   ctl-leak-target leak     register_session() keeps every session in a std::map that is never
//                            pruned: about 250 KiB a second for 60 s, then it waits for a signal
//   ctl-leak-target steady   fills a bounded cache once, then only allocates and frees; waits
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
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
