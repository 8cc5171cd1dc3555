#include "capture_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "capture_format.h"

namespace rsr::capture {
namespace {

bool ends_with(const char* s, size_t n, const char* suffix) {
  const size_t k = std::strlen(suffix);
  return n >= k && std::memcmp(s + n - k, suffix, k) == 0;
}

bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

// `name` in `dfd` is still the regular file `st` and begins with the capture magic.
bool starts_with_magic(int dfd, const char* name, const struct stat& st) {
  const int fd = ::openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  uint8_t head[sizeof kMagic];
  struct stat now {};
  const bool same = ::fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino &&
                    S_ISREG(now.st_mode);
  const ssize_t n = same ? ::read(fd, head, sizeof head) : -1;
  ::close(fd);
  return n == static_cast<ssize_t>(sizeof head) && std::memcmp(head, kMagic, sizeof kMagic) == 0;
}

}  // namespace

bool capture_file_name(const char* name) {
  const size_t n = std::strlen(name);
  if (ends_with(name, n, ".bin.part")) return true;
  return ends_with(name, n, ".bin") && (starts_with(name, "profile_") || starts_with(name, "scope_"));
}

bool capture_file_expired(int dfd, const char* name, double cutoff, time_t now, struct stat* st) {
  if (!capture_file_name(name)) return false;
  if (::fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st->st_mode)) return false;
  if (static_cast<double>(st->st_mtime) >= cutoff) return false;
  const size_t n = std::strlen(name);
  if (ends_with(name, n, ".part") && st->st_mtime > now - kPartQuietSeconds) return false;
  return starts_with_magic(dfd, name, *st);
}

}  // namespace rsr::capture
