// The library's own stack walker for x86-64. May run inside malloc.
//
// It reads each frame's DWARF call-frame information (.eh_frame, found through .eh_frame_hdr
// with _dl_find_object: no lock, no system call), reduces it to the three rules a return
// address needs (where the CFA is, where the return address and the caller's rbp were saved)
// and keeps those rules in a process-wide table keyed by instruction address, so a frame costs
// a table lookup and two loads once any thread has unwound through that code. libunwind's
// local unwinder pays two sigprocmask calls and a dl_iterate_phdr (under the loader's lock) per
// frame that its per-thread cache has not seen yet, and validates memory with system calls:
// about twenty system calls for a sample in a thread's first moments.
//
// It handles what compilers emit for ordinary code (CFA = rsp or rbp + offset, saved registers
// at CFA offsets, remember/restore state). Anything else (expressions, signal frames, a stack
// the walker cannot bound) makes it give up on the whole stack, and the caller unwinds with
// libunwind instead. Every stack read is bounded by the thread's stack.
#pragma once

#include <cstdint>

namespace rsr::hot {

// Return addresses of the calling thread's stack, innermost first, the walker's own frame
// excluded, and so are the innermost ones in [skip_lo, skip_hi) (the library's own frames):
// up to `want` of them in `out`. -1 when it cannot walk this stack.
int walk_stack(uintptr_t* out, int want, uintptr_t skip_lo = 0, uintptr_t skip_hi = 0);

// Forgets every cached rule: code was unloaded (dlclose), and other code may be loaded at its
// addresses.
void walk_forget();

// Rules cached, and stacks given up on (left to libunwind).
struct WalkCounts {
  uint64_t rules = 0, gave_up = 0;
};
WalkCounts walk_counts();

}  // namespace rsr::hot
