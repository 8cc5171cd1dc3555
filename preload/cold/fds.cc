#include "fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace rsr::cold {
namespace {

constexpr int kReserved = 64;      // numbers the library may use below the limit
constexpr int kMaxFloor = 1024 - kReserved;

std::atomic<int> g_floor{0};

}  // namespace

int high_fd_floor() {
  int floor = g_floor.load(std::memory_order_relaxed);
  if (floor > 0) return floor;
  rlimit rl{};
  floor = kMaxFloor;
  // Stay below the soft limit, but not so high that a program's raised limit sends us into
  // numbers nobody ever reaches (select() users stay below 1024 either way).
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < static_cast<rlim_t>(kMaxFloor + kReserved)) {
    floor = static_cast<int>(rl.rlim_cur) - kReserved;
  }
  if (floor < 3) floor = 3;
  g_floor.store(floor, std::memory_order_relaxed);
  return floor;
}

OwnedFd adopt(int fd) {
  OwnedFd out;
  if (fd < 0) return out;
  const int saved = errno;
  int use = fd;
  if (fd < high_fd_floor()) {
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, high_fd_floor());
    if (high >= 0) {
      close(fd);
      use = high;
    } else {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  struct stat st{};
  if (fstat(use, &st) != 0) {
    close(use);
    errno = saved;
    return out;
  }
  out.fd = use;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  errno = saved;
  return out;
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
