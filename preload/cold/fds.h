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
OwnedFd adopt(int fd);

// True when `f.fd` still refers to the file it was adopted on.
bool still_ours(const OwnedFd& f);

// Closes `f` if it is still the library's; forgets it either way.
void release(OwnedFd& f);

// Forgets `f` without closing: the number now belongs to the program.
inline void forget(OwnedFd& f) { f = OwnedFd{}; }

// The lowest number adopt() moves descriptors to (a little below the soft RLIMIT_NOFILE).
int high_fd_floor();

}  // namespace rsr::cold
