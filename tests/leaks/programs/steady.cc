// A service in miniature with no leak at all, for the false-positive test: two caches at capacity
// from the start, request-like temporaries, and two threads of churn with multi-megabyte bursts
// held briefly (workload.h says why they are shaped so).
//
// The caches are prefilled by the very request loop that later serves from them (one call of
// handle_request, so one stack): the library keeps live bytes per stack, and a cache filled from
// one call path and refreshed from another would really move its bytes from one site to another
// as entries are replaced -- the refreshing site grows for as long as the turnover takes, which is
// growth by the contract's definition, not a false positive. This program has none of that.
//
// Usage: steady
// stdout: "ready <pid> <cached_bytes>" once both caches are full and the churn threads run.
// stdin:  "quit" or EOF stops the program (exit 0).
#include <poll.h>
#include <unistd.h>

#include "workload.h"

int main() {
  wl::LruCache items(2000, 4096), users(20000, 256);
  wl::KeyStream item_keys(3, 0.10), user_keys(5, 0.05);
  std::mt19937 rng(13);
  wl::Pacer item_requests, user_requests;
  std::atomic<bool> stop{false};
  std::thread churn_a, churn_b;
  bool ready = false;
  volatile size_t sink = 0;
  for (;;) {
    if (ready) {
      pollfd pfd{0, POLLIN, 0};
      if (poll(&pfd, 1, 1) > 0) {
        char buf[256];
        const ssize_t k = read(0, buf, sizeof buf);
        if (k <= 0 || std::string(buf, static_cast<size_t>(k)).find("quit") != std::string::npos) break;
      }
    }
    // While a cache fills, every request is a miss that fills it; then requests are paced.
    const uint64_t n_items = items.full() ? item_requests.due(1333) : items.capacity - items.order.size();
    const uint64_t n_users = users.full() ? user_requests.due(2000) : users.capacity - users.order.size();
    for (uint64_t i = 0; i < n_items + n_users; ++i) {
      const bool item = i < n_items;
      sink = sink + wl::handle_request(item ? items : users, item ? item_keys : user_keys, rng);
    }
    if (!ready && items.full() && users.full()) {
      ready = true;
      item_requests = wl::Pacer();
      user_requests = wl::Pacer();
      churn_a = std::thread(wl::churn_worker, &stop, 3u);
      churn_b = std::thread(wl::churn_worker, &stop, 4u);
      wl::say("ready " + std::to_string(getpid()) + " " +
              std::to_string(items.capacity * items.value_bytes + users.capacity * users.value_bytes));
    }
  }
  stop = true;
  churn_a.join();
  churn_b.join();
  (void)sink;
  return 0;
}
