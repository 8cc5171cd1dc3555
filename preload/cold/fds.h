// Descriptors the library owns. Runs outside allocation hooks (no allocation either).
//
// Daemons close every descriptor >= 3 (or every one they did not open) and dup2() over low
// numbers; the numbers then come back for the program's own files and sockets. The library must
// never act on a descriptor that is no longer its own, so each one it keeps:
//   - lives at a high number, close-on-exec, out of the way of the program's lowest-free-number
//     opens and of its dup2() targets (adopt());
//   - remembers the identity (device and inode) of what it was opened on, and is checked before
//     every use that follows a possible close (still_ours()): EBADF, or another file now under
//     that number, means "lost";
//   - once lost, is forgotten, never closed: closing it would close the program's file.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>

namespace rsr::cold {

struct OwnedFd {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
  bool valid() const { return fd >= 0; }
};

// Moves `fd` (just opened by the library) to a high number, close-on-exec, and records its
// identity. The low number is closed. On failure (no high number free) the descriptor stays
// where it is, still close-on-exec, still identified. Returns an invalid OwnedFd when fstat
// fails (the descriptor is closed).
//
// Between open() and the move, another thread of the program may close every descriptor and
// open its own file at that very number: only use adopt() where that cannot happen (before
// main, a descriptor the library has verified otherwise). For a path, adopt_path() checks.
OwnedFd adopt(int fd);

// A high, close-on-exec copy of `fd` with its identity (`fd` itself when no high number is free
// or it is high already); `fd` stays open. Invalid when fstat fails.
OwnedFd copy_high(int fd);

// adopt() that first asks `is_ours(copy)` whether the high copy is what the library opened (the
// file a path names, a socket's address): when it is not, the program took the low number over
// in between, and the low number is left alone, never closed. Returns an invalid OwnedFd (errno
// EAGAIN) in that case; the caller may simply open again.
template <class IsOurs>
OwnedFd adopt_checked(int fd, IsOurs is_ours);

// adopt_checked() for a descriptor just opened on `path`: the copy must be the file the path
// names now (device and inode).
OwnedFd adopt_path(int fd, const char* path);

// True when `f.fd` still refers to the file it was adopted on.
bool still_ours(const OwnedFd& f);

// open() for the library's own use: adopt_path() on the result, opened again (a few times) when
// the program took the number over in between. With O_CREAT|O_EXCL the file created by an
// attempt that lost its number is removed before the next.
OwnedFd open_owned(const char* path, int flags, mode_t mode = 0);

// Closes `low` (a number the library opened and has copied to `copy`) only while it is still
// that same file: a program that closed it meanwhile may have its own file there.
void close_if_same(int low, const OwnedFd& copy);

// Closes `f` if it is still the library's; forgets it either way.
void release(OwnedFd& f);

// Forgets `f` without closing: the number now belongs to the program.
inline void forget(OwnedFd& f) { f = OwnedFd{}; }

// The lowest number adopt() moves descriptors to (a little below the soft RLIMIT_NOFILE).
int high_fd_floor();

template <class IsOurs>
OwnedFd adopt_checked(int fd, IsOurs is_ours) {
  if (fd < 0) return OwnedFd{};
  OwnedFd copy = copy_high(fd);
  if (copy.valid() && !is_ours(copy)) {
    if (copy.fd != fd) ::close(copy.fd);  // our copy of whatever that number is now
    errno = EAGAIN;
    return OwnedFd{};
  }
  if (copy.valid()) close_if_same(fd, copy);
  return copy;
}

}  // namespace rsr::cold
