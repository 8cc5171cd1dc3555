// Opening paths that come from untrusted input (capture files, module paths in captures and
// replies, debug files named inside ELF files, --env-file) without ever blocking or reading
// without end.
//
// A path is opened first, non-blocking (a FIFO's open would wait for a writer) and close-on-exec,
// and only then is the descriptor checked: it must be a regular file. Never stat-then-open, which
// a swap between the two would defeat. Symbolic links are followed (to a regular file is fine);
// what they lead to is what is checked. A regular file's reads never block, so the non-blocking
// flag stays.
//
// Plain functions; safe from any thread.
#pragma once

#include <sys/types.h>

#include <streambuf>
#include <string>

namespace rsr::ctl {

// Owns one descriptor; closes it unless released.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// "a FIFO", "a directory", "a character device", ... for a mode that is not a regular file.
std::string file_kind(mode_t mode);

struct OpenedFile {
  UniqueFd fd;        // valid when the path is a regular file opened for reading
  int error = 0;      // errno of a failed open (ENOENT: nothing there), 0 otherwise
  std::string why;    // when !fd: "not a regular file (a FIFO)", or strerror(error)
  uint64_t size = 0;  // bytes, when opened
};

// Opens `path` read-only if, once opened, it is a regular file.
OpenedFile open_regular_file(const std::string& path);

// Creates or truncates `path` for writing, mode 0644 before the umask, when it is (or becomes) a
// regular file: a symbolic link as its last component is not followed, and a FIFO or a device
// there is refused without blocking. For output names rsrmemctl makes up beside an input that
// may sit in a shared directory. On failure !fd and `why` says what is there or what failed.
struct CreatedFile {
  UniqueFd fd;
  std::string why;
};
CreatedFile create_regular_file(const std::string& path);

// Writes everything written to it to a descriptor (which it does not own); errors are the
// stream's badbit.
class FdStreambuf : public std::streambuf {
 public:
  explicit FdStreambuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  ~FdStreambuf() override { sync(); }

 protected:
  int overflow(int c) override;
  int sync() override;

 private:
  bool flush_buffer();
  int fd_;
  char buf_[65536];
};

// The whole of the regular file `path`, which must hold at most `max_bytes`. Throws CtlError
// (kExitNotFound) naming `what` and the path: "cannot read env file F: not a regular file (a
// FIFO)", "...: larger than 1.0 MiB, the most rsrmemctl reads for one".
std::string read_regular_file(const std::string& path, size_t max_bytes, const std::string& what);

}  // namespace rsr::ctl
