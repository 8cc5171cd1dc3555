#include "fd_watch.h"

namespace rsr::hot {

constinit FdWatch g_fd_watch{};

int fd_watch(int fd) {
  if (fd < 0) return -1;
  for (int i = 0; i < kWatchSlots; ++i) {
    int expected = 0;
    if (g_fd_watch.fd_plus1[i].compare_exchange_strong(expected, fd + 1)) {
      g_fd_watch.lost[i].store(0, std::memory_order_relaxed);
      return i;
    }
  }
  return -1;
}

void fd_unwatch(int slot) {
  if (slot >= 0) g_fd_watch.fd_plus1[slot].store(0, std::memory_order_release);
}

void fd_note_closing(unsigned lo, unsigned hi) {
  for (int i = 0; i < kWatchSlots; ++i) {
    const int fd = g_fd_watch.fd_plus1[i].load(std::memory_order_acquire) - 1;
    if (fd >= 0 && static_cast<unsigned>(fd) >= lo && static_cast<unsigned>(fd) <= hi)
      g_fd_watch.lost[i].store(1, std::memory_order_relaxed);
  }
}

}  // namespace rsr::hot
