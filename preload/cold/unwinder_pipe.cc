#include "unwinder_pipe.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>

#include "../hot/engine.h"
#include "../hot/fd_watch.h"
#include "../hot/stack.h"
#include "fds.h"
#include "log.h"

namespace rsr::cold {
namespace {

constexpr int kMaxCandidates = 1024;

RSR_LARGE_BSS int* g_candidates[kMaxCandidates];
int g_candidate_count = 0;

volatile int* g_array = nullptr;  // libunwind's mem_validate_pipe
OwnedFd g_read, g_write;          // the pipe the array points at, when it is ours

// Tells the stack capture what to check before each stack (hot/stack.h): the new pipe's numbers,
// watched; the old ones no longer (the library is about to close them itself).
void publish() {
  hot::UnwinderPipe& u = hot::g_unwinder_pipe;
  const int old_read = u.read_slot.load(std::memory_order_relaxed), old_write = u.write_slot.load(std::memory_order_relaxed);
  u.read_fd.store(g_read.fd, std::memory_order_relaxed);
  u.write_fd.store(g_write.fd, std::memory_order_relaxed);
  u.read_slot.store(hot::fd_watch(g_read.fd), std::memory_order_relaxed);
  u.write_slot.store(hot::fd_watch(g_write.fd), std::memory_order_relaxed);
  u.array.store(g_array, std::memory_order_release);
  hot::fd_unwatch(old_read);
  hot::fd_unwatch(old_write);
}

// Whether the pipe the array points at is still the library's: not closed or replaced through
// libc (the watch) nor by a raw system call (identity).
bool intact() {
  const hot::UnwinderPipe& u = hot::g_unwinder_pipe;
  return !hot::fd_lost(u.read_slot.load(std::memory_order_relaxed)) &&
         !hot::fd_lost(u.write_slot.load(std::memory_order_relaxed)) && still_ours(g_read) && still_ours(g_write);
}

struct Scan {
  uintptr_t base;  // load address of libunwind
};

// Notes every 4-byte-aligned pair {-1,-1} in libunwind's writable segments.
int note_candidates(dl_phdr_info* info, size_t, void* arg) {
  if (info->dlpi_addr != static_cast<const Scan*>(arg)->base) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W)) continue;
    const uintptr_t lo = (info->dlpi_addr + ph.p_vaddr + 3) & ~uintptr_t{3};
    const uintptr_t hi = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    for (uintptr_t a = lo; a + 8 <= hi && g_candidate_count < kMaxCandidates; a += 4) {
      int* p = reinterpret_cast<int*>(a);
      if (p[0] == -1 && p[1] == -1) g_candidates[g_candidate_count++] = p;
    }
  }
  return 1;
}

// Whether `a` and `b` are the two ends of one pipe.
bool pipe_pair(int a, int b) {
  struct stat sa{}, sb{};
  return a >= 0 && b >= 0 && a != b && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && S_ISFIFO(sa.st_mode) &&
         S_ISFIFO(sb.st_mode) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Points the array at high duplicates of `a` and `b` (libunwind's current pipe, or a fresh one).
// The old numbers stay open until the array no longer names them, so a thread that read them a
// moment ago still finds its pipe.
bool install(int a, int b) {
  OwnedFd r = adopt(fcntl(a, F_DUPFD_CLOEXEC, high_fd_floor()));
  OwnedFd w = adopt(fcntl(b, F_DUPFD_CLOEXEC, high_fd_floor()));
  // Both copies must be the ends of one pipe: a number the program took over meanwhile is not.
  if (!r.valid() || !w.valid() || !pipe_pair(r.fd, w.fd)) {
    release(r);
    release(w);
    return false;
  }
  g_array[0] = r.fd;
  g_array[1] = w.fd;
  OwnedFd old_r = g_read, old_w = g_write;
  g_read = r;
  g_write = w;
  publish();
  release(old_r);  // only when still ours
  release(old_w);
  return true;
}

bool install_fresh() {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  const bool ok = install(p[0], p[1]);
  if (ok) {
    close_if_same(p[0], g_read);
    close_if_same(p[1], g_write);
  }
  return ok;
}

}  // namespace

void unwinder_pipe_before_init(void* libunwind) {
  link_map* lm = nullptr;
  Scan scan{};
  g_candidate_count = 0;
  if (dlinfo(libunwind, RTLD_DI_LINKMAP, &lm) == 0 && lm) {
    scan.base = lm->l_addr;
    dl_iterate_phdr(note_candidates, &scan);
  }
}

void unwinder_pipe_after_init() {
  int* found = nullptr;
  int matches = 0;
  for (int i = 0; i < g_candidate_count; ++i) {
    int* p = g_candidates[i];
    if (pipe_pair(p[0], p[1])) {
      found = p;
      ++matches;
    }
  }
  g_candidate_count = 0;
  if (matches != 1) {
    log(Level::kInfo, "libunwind's validation pipe was not identified (%d candidates); left where it is", matches);
    return;
  }
  g_array = found;
  const int a = found[0], b = found[1];
  // The low numbers were opened for us a moment ago: ours to close once the array moved on.
  if (install(a, b)) {
    close_if_same(a, g_read);
    close_if_same(b, g_write);
  }
}

void unwinder_pipe_tick() {
  if (!g_array) return;
  const int a = g_array[0], b = g_array[1];
  if (a == g_read.fd && b == g_write.fd && intact()) return;
  // libunwind opened a new pipe after a failed read (its numbers are its own, but the program may
  // have closed and reused them since: they are duplicated, never closed), or the program closed
  // or reused ours: a fresh pipe either way.
  if (a != g_read.fd || b != g_write.fd) {
    if (!(pipe_pair(a, b) && install(a, b))) install_fresh();
  } else {
    forget(g_read);  // not ours any more: never closed by us
    forget(g_write);
    install_fresh();
  }
  log(Level::kInfo, "libunwind's validation pipe was lost (the program closed or reused it); replaced");
}

bool unwinder_pipe_managed() { return g_array != nullptr; }

}  // namespace rsr::cold
