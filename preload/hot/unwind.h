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

#include <cstddef>
#include <cstdint>

namespace rsr::hot {

// A thread's last walked stack, for captures, which walk a stack at every allocation and mostly
// the same few. From the first frame kept on, a walk is a function of the registers it starts
// with (rsp, rbp, the frame's address) and of the values it loads from the stack (each saved
// return address and rbp): when the registers are the same as last time and every one of those
// loads still reads the value it read then, the walk would return the same frames. Checking
// that is independent loads and compares, where walking is a chain of dependent ones with a rule
// lookup per frame. `site` is for the caller: the site it interned for these frames.
struct StackMemo {
  struct Load {
    uintptr_t at, value;
  };
  uint64_t generation;  // walk_forget() makes every memo stale
  int capacity;         // frames; loads has 2 * capacity + 1
  int frames_n;         // 0: nothing remembered
  int want;
  int loads_n;
  bool bp_used;          // the walk used the starting rbp
  uint32_t site;         // kMemoNoSite until the caller sets it
  uintptr_t sp, bp, pc;  // at the first frame kept
  uintptr_t* frames;     // capacity of them
  Load* loads;
};
inline constexpr uint32_t kMemoNoSite = UINT32_MAX;
// Bytes of a memo for up to `capacity` frames (header, frames and loads in one block).
inline size_t stack_memo_bytes(int capacity) {
  return sizeof(StackMemo) + sizeof(uintptr_t) * static_cast<size_t>(capacity) +
         sizeof(StackMemo::Load) * (2 * static_cast<size_t>(capacity) + 1);
}
// Lays a memo out in `block` (stack_memo_bytes(capacity) of them).
StackMemo* stack_memo_init(void* block, int capacity);

// Return addresses of the calling thread's stack, innermost first, the walker's own frame
// excluded, and so are the innermost ones in [skip_lo, skip_hi) (the library's own frames):
// up to `want` of them in `out`. -1 when it cannot walk this stack. With a memo (the calling
// thread's own), the walk is checked against it first, and remembered; `reused` then says
// whether it was the memo's stack. Afterwards the memo holds the frames returned, or none (the
// walk kept no frame or gave up), so what its user keeps beside it (a site) belongs to them.
int walk_stack(uintptr_t* out, int want, uintptr_t skip_lo = 0, uintptr_t skip_hi = 0, StackMemo* memo = nullptr,
               bool* reused = nullptr);

// A caller's registers right after its call returned: the return address, the stack pointer
// (the called function's CFA) and rbp. An allocation hook that ends in a tail call hands its
// slow path exactly that (threads.cc), so a capture's walk can start at the program's frame
// instead of stepping out of the library's own.
struct CallerFrame {
  uintptr_t pc, sp, bp;
};
// The same walk from that frame on: `from.pc` is the first frame reported (unless skipped).
int walk_stack_from(const CallerFrame& from, uintptr_t* out, int want, uintptr_t skip_lo, uintptr_t skip_hi,
                    StackMemo* memo, bool* reused);

// Whether `memo` (the calling thread's) holds the stack that walk_stack_from(from, ..., want, ...)
// would return now: the check that walk makes first. For a caller that wants only what it kept
// beside the memo (a site), not the frames, and may not allocate to get them.
bool memo_holds_from(const StackMemo& memo, int want, const CallerFrame& from);

// Forgets every cached rule: code was unloaded (dlclose), and other code may be loaded at its
// addresses.
void walk_forget();

// Rules cached, and stacks given up on (left to libunwind).
struct WalkCounts {
  uint64_t rules = 0, gave_up = 0;
};
WalkCounts walk_counts();

}  // namespace rsr::hot
