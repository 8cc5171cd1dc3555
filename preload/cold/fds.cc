#include "fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace rsr::cold {
namespace {

constexpr int kReserved = 64;  // numbers the library may use below the limit
// Below 1024: the kernel's descriptor table grows to the highest number in use, and every fork
// copies it (a 4096-entry table cost each fork+exit 10-20 us more than a 1024-entry one here).
// 1024 is also the soft limit most services run with, where the floor was this already.
constexpr int kMaxFloor = 1024 - kReserved;

std::atomic<int> g_floor{0};

}  // namespace

void close_if_same(int low, const OwnedFd& copy) {
  const int saved = errno;
  struct stat st{};
  if (low >= 0 && low != copy.fd && fstat(low, &st) == 0 && st.st_dev == copy.dev && st.st_ino == copy.ino) close(low);
  errno = saved;
}

int high_fd_floor() {
  int floor = g_floor.load(std::memory_order_relaxed);
  if (floor > 0) return floor;
  rlimit rl{};
  floor = kMaxFloor;
  // Stay below the soft limit, as high as is cheap: a program that closed ours reuses numbers
  // from the bottom, and reaches ours only with hundreds of descriptors open.
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < static_cast<rlim_t>(kMaxFloor + kReserved)) {
    floor = static_cast<int>(rl.rlim_cur) - kReserved;
  }
  if (floor < 3) floor = 3;
  g_floor.store(floor, std::memory_order_relaxed);
  return floor;
}

OwnedFd copy_high(int fd) {
  OwnedFd out;
  int use = fd;
  if (fd < high_fd_floor()) {
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, high_fd_floor());
    if (high >= 0) use = high;
    else fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  struct stat st{};
  if (fstat(use, &st) != 0) {
    if (use != fd) close(use);
    return out;
  }
  out.fd = use;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  return out;
}

OwnedFd adopt(int fd) {
  if (fd < 0) return OwnedFd{};
  const int saved = errno;
  const OwnedFd out = copy_high(fd);
  if (out.valid()) close_if_same(fd, out);
  errno = saved;
  return out;
}

OwnedFd adopt_path(int fd, const char* path) {
  const int saved = errno;
  OwnedFd out = adopt_checked(fd, [path](const OwnedFd& copy) {
    struct stat by_path{};
    return stat(path, &by_path) == 0 && by_path.st_dev == copy.dev && by_path.st_ino == copy.ino;
  });
  if (out.valid()) errno = saved;
  return out;
}

OwnedFd open_owned(const char* path, int flags, mode_t mode) {
  // A program busy replacing every number (a dup2() loop) is done within milliseconds.
  static constexpr useconds_t kBackoffUs[] = {0, 1000, 5000, 20000, 50000};
  for (useconds_t pause : kBackoffUs) {
    if (pause) usleep(pause);
    OwnedFd f = adopt_path(open(path, flags | O_CLOEXEC, mode), path);
    if (f.valid() || errno != EAGAIN) return f;
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) unlink(path);
  }
  return OwnedFd{};
}

bool still_ours(const OwnedFd& f) {
  if (f.fd < 0) return false;
  const int saved = errno;
  struct stat st{};
  const bool ok = fstat(f.fd, &st) == 0 && st.st_dev == f.dev && st.st_ino == f.ino;
  errno = saved;
  return ok;
}

void release(OwnedFd& f) {
  if (still_ours(f)) close(f.fd);
  forget(f);
}

}  // namespace rsr::cold
