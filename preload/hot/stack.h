// Stack capture for sampled allocations. May run inside malloc.
//
// libunwind is loaded privately (dlopen RTLD_LOCAL): linked normally, its exported _Unwind_* and
// backtrace symbols would replace the process's own. The control thread loads it (cold/
// lifecycle.cc), once the program has lived through the start-up quiet period or as soon as a
// sample wants a stack, whichever comes first: a program that exits sooner never loads it.
#pragma once

#include <atomic>
#include <cstdint>

namespace rsr::hot {

struct StackCapture {
  int (*backtrace)(void** buffer, int size) = nullptr;  // libunwind's unw_backtrace
  // unw_getcontext, unw_init_local, unw_step, unw_get_reg (local): stepping a stack frame by
  // frame, for sampled stacks (sample.cc says why). Null when libunwind lacks them.
  int (*getcontext)(void* context) = nullptr;
  int (*init_local)(void* cursor, void* context) = nullptr;
  int (*step)(void* cursor) = nullptr;
  int (*get_reg)(void* cursor, int reg, uint64_t* value) = nullptr;
  uintptr_t self_lo = 0, self_hi = 0;  // address range of librsrmem.so, trimmed from stacks
  int depth = 64;
};
extern StackCapture g_stack;

// Where loading libunwind stands. It is loaded only for the stacks the library's own walker
// (unwind.h) leaves to it. The first such stack that finds it kUnwinderIdle asks for it; during
// the start-up such stacks wait (futex) until the control thread has settled it, loaded or not,
// but never past kUnwinderWaitMs after that first ask. The bound covers a control thread that
// cannot load it right now (a sample taken inside the dynamic loader holds the loader's lock):
// stacks until it is loaded carry no frames, and the process waited once. After the start-up
// nothing waits: the control thread loads it at its next turn.
inline constexpr uint32_t kUnwinderIdle = 0, kUnwinderWanted = 1, kUnwinderSettled = 2;
inline constexpr int kUnwinderWaitMs = 100;
extern std::atomic<uint32_t> g_unwinder_state;
// The control thread: waits until a sample asks for libunwind (kUnwinderWanted) or `ms` have passed.
void wait_unwinder_wanted(int64_t ms);
// The control thread, after loading it (or failing to): wakes the waiting samples.
void unwinder_settled();
// The control thread, once the start-up is over: stacks asking for libunwind no longer wait.
void unwinder_no_more_waits();

// libunwind's memory-validation pipe (cold/unwinder_pipe.h): where its numbers are kept and the
// watch slots (fd_watch.h) of the pipe the library put there. libunwind reads from and writes to
// those numbers while it unwinds through code without unwind information, so a stack is only
// captured while both are still that pipe: once the program closed or replaced one (through
// libc: marked at once; by a raw system call: found by the control thread's check within a
// second), samples carry no stack until the control thread has given libunwind a fresh pipe.
// Cost when set: three loads and two compares per stack.
struct UnwinderPipe {
  std::atomic<volatile int*> array{nullptr};  // null: not managed, nothing to check
  std::atomic<int> read_fd{-1}, write_fd{-1};
  std::atomic<int> read_slot{-1}, write_slot{-1};
};
extern UnwinderPipe g_unwinder_pipe;
// True when libunwind may unwind now (the pipe is not managed, or still the library's).
bool unwinder_pipe_intact();

// Depth of every sampled stack (frames kept), as in the `metrics` reply: counts per bucket
// (depth <= bound, above the previous bound), the last one above the top bound. Summed from the
// call sites when asked (each sample counts on its site, whose stack has that depth), so a sample
// takes no shared counter for it; samples without a site (the site table full) are not in it.
inline constexpr int kDepthBounds[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128};
inline constexpr int kDepthBuckets = sizeof kDepthBounds / sizeof kDepthBounds[0] + 1;
struct DepthHistogram {
  uint64_t counts[kDepthBuckets];
  uint64_t sum, count;
};
DepthHistogram stack_depths();  // cold side

// Fork support: no thread may be inside libunwind when the process forks (see sample.cc).
void stack_atfork_prepare();
void stack_atfork_parent();
void stack_atfork_child();

}  // namespace rsr::hot
