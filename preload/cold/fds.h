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

// adopt() for a descriptor just opened on `path`: the high copy must be the file the path names
// now (device and inode), or the low number was taken over by the program in between; the low
// number is then the program's: left alone, never closed. Returns an invalid OwnedFd (errno
// EAGAIN) in that case; the caller may simply open again.
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

}  // namespace rsr::cold
