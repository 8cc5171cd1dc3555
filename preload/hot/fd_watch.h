// Descriptors the library watches for the program closing or replacing them. May run in any
// context: lock-free, allocation-free.
//
// A daemon closes every descriptor it did not open (close() in a loop, close_range, closefrom)
// or dup2()s over numbers; those libc calls are interposed (preload/fd_hooks.cpp) and mark a
// watched number lost before it goes, so its user (libunwind's validation pipe, whose users
// cannot check it themselves) stops before its next use for the cost of one load, not a system
// call. Raw system calls bypass the interposition; the control thread's once-a-second identity
// checks (cold/fds.h) catch those.
#pragma once

#include <atomic>
#include <cstdint>

#pragma GCC visibility push(hidden)

namespace rsr::hot {

inline constexpr int kWatchSlots = 8;

struct FdWatch {
  std::atomic<int> fd_plus1[kWatchSlots];  // the watched number + 1; 0: a free slot
  std::atomic<uint8_t> lost[kWatchSlots];  // 1 once closed or replaced through libc
};
extern FdWatch g_fd_watch;

// Watches `fd`; returns its slot, or -1 when every slot is taken.
int fd_watch(int fd);
// Stops watching (before the library closes the number itself).
void fd_unwatch(int slot);
[[gnu::always_inline]] inline bool fd_lost(int slot) {
  return slot < 0 || g_fd_watch.lost[slot].load(std::memory_order_relaxed) != 0;
}
// The program is about to close or replace every number in [lo, hi].
void fd_note_closing(unsigned lo, unsigned hi);

}  // namespace rsr::hot

#pragma GCC visibility pop
