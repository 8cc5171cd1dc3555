// The libc calls that close or replace descriptors, interposed only to notice when the program
// takes back a number the library watches (hot/fd_watch.h). Each one marks, then forwards to the
// next definition unchanged: the program's descriptors, results and errno are its own.
#include <dlfcn.h>

#include <atomic>

#include "hot/fd_watch.h"

namespace {

template <class F>
F next(std::atomic<F>& slot, const char* name) {
  F f = slot.load(std::memory_order_acquire);
  if (!f) {
    f = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
    slot.store(f, std::memory_order_release);
  }
  return f;
}

std::atomic<int (*)(int)> g_close{nullptr};
std::atomic<int (*)(unsigned, unsigned, int)> g_close_range{nullptr};
std::atomic<void (*)(int)> g_closefrom{nullptr};
std::atomic<int (*)(int, int)> g_dup2{nullptr};
std::atomic<int (*)(int, int, int)> g_dup3{nullptr};

constexpr int kCloseRangeCloexec = 1 << 2;  // CLOSE_RANGE_CLOEXEC: marks, does not close

}  // namespace

#define RSR_EXPORT extern "C" __attribute__((visibility("default")))

RSR_EXPORT int close(int fd) {
  if (fd >= 0) rsr::hot::fd_note_closing(static_cast<unsigned>(fd), static_cast<unsigned>(fd));
  return next(g_close, "close")(fd);
}

RSR_EXPORT int close_range(unsigned lo, unsigned hi, int flags) {
  if (!(flags & kCloseRangeCloexec)) rsr::hot::fd_note_closing(lo, hi);
  return next(g_close_range, "close_range")(lo, hi, flags);
}

RSR_EXPORT void closefrom(int lo) {
  rsr::hot::fd_note_closing(lo < 0 ? 0u : static_cast<unsigned>(lo), ~0u);
  next(g_closefrom, "closefrom")(lo);
}

RSR_EXPORT int dup2(int old_fd, int new_fd) {
  if (new_fd >= 0 && new_fd != old_fd)
    rsr::hot::fd_note_closing(static_cast<unsigned>(new_fd), static_cast<unsigned>(new_fd));
  return next(g_dup2, "dup2")(old_fd, new_fd);
}

RSR_EXPORT int dup3(int old_fd, int new_fd, int flags) {
  if (new_fd >= 0) rsr::hot::fd_note_closing(static_cast<unsigned>(new_fd), static_cast<unsigned>(new_fd));
  return next(g_dup3, "dup3")(old_fd, new_fd, flags);
}
