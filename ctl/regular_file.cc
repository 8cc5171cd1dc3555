#include "regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "format.h"

namespace rsr::ctl {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

std::string file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

OpenedFile open_regular_file(const std::string& path) {
  OpenedFile out;
  // O_NONBLOCK: a FIFO's open returns at once instead of waiting for a writer, and a device's
  // open does not wait for carrier or media.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    out.error = errno;
    out.why = std::strerror(out.error);
    return out;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    out.error = errno;
    out.why = std::strerror(out.error);
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    out.why = "not a regular file (" + file_kind(st.st_mode) + ")";
    return out;
  }
  out.size = static_cast<uint64_t>(st.st_size);
  out.fd = std::move(fd);
  return out;
}

CreatedFile create_regular_file(const std::string& path) {
  CreatedFile out;
  UniqueFd fd(::open(path.c_str(),
                     O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0644));
  if (!fd) {
    const int err = errno;
    out.why = err == ELOOP ? "it is a symbolic link (not followed for a name made from the "
                             "input's; give the output's name to write through it)"
              : err == ENXIO ? "it is a FIFO with no reader"
                             : std::strerror(err);
    return out;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    out.why = std::strerror(errno);
    return out;
  }
  if (!S_ISREG(st.st_mode)) {
    out.why = "not a regular file (" + file_kind(st.st_mode) + ")";
    return out;
  }
  // Truncated only now that it is known to be a regular file.
  if (::ftruncate(fd.get(), 0) != 0) {
    out.why = std::strerror(errno);
    return out;
  }
  out.fd = std::move(fd);
  return out;
}

bool FdStreambuf::flush_buffer() {
  const char* p = pbase();
  while (p < pptr()) {
    const ssize_t n = ::write(fd_, p, static_cast<size_t>(pptr() - p));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
  }
  setp(buf_, buf_ + sizeof buf_);
  return true;
}

int FdStreambuf::overflow(int c) {
  if (!flush_buffer()) return traits_type::eof();
  if (c != traits_type::eof()) {
    *pptr() = static_cast<char>(c);
    pbump(1);
  }
  return traits_type::not_eof(c);
}

int FdStreambuf::sync() { return flush_buffer() ? 0 : -1; }

std::string read_regular_file(const std::string& path, size_t max_bytes, const std::string& what) {
  OpenedFile f = open_regular_file(path);
  if (!f.fd) throw CtlError(kExitNotFound, "cannot read " + what + " " + path + ": " + f.why);
  const auto too_large = [&] {
    return CtlError(kExitNotFound, "cannot read " + what + " " + path + ": larger than " +
                                       human_bytes(static_cast<double>(max_bytes)) +
                                       ", the most rsrmemctl reads for one");
  };
  if (f.size > max_bytes) throw too_large();
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(f.fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw CtlError(kExitNotFound,
                     "cannot read " + what + " " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    // The size seen at open is not a promise: a file that grows is cut off here too.
    if (text.size() + static_cast<size_t>(n) > max_bytes) throw too_large();
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace rsr::ctl
