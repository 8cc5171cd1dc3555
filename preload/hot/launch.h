// When the control thread starts. A process gets no thread at start-up: one that exits soon (a
// shell loop's /bin/true, a short command, a forked child that execs) never pays for creating one
// and for tearing it down. The thread starts at the first of two kinds of safe points, places
// where the calling thread holds no lock that creating a thread needs:
//  - an allocation, once the process has lived its quiet period (kQuietMs, a forked child
//    kChildQuietMs), checked where the allocation's countdown expires (every 64 KiB or sample),
//    when the program or one of its libraries called it: not libc, the dynamic loader, the next
//    allocator or this library, which may hold locks of their own while they allocate;
//  - a call that may wait (poll, epoll_wait, select, accept, recv, sleep, pause, sigsuspend,
//    sigwait, the wait family, system, pthread_join; read and stdio's reads unless they read a
//    regular file: wait_hooks.c), at any age: a process that waits lives on.
// A process that does neither (it computes without allocating, or allocates only through another
// allocator, and never waits through libc) has no control socket until it does. The thread, once
// running, waits for the rest of the quiet period before it finishes the start-up.
// While a thread makes the control thread, its allocations come from the bootstrap arena
// (real.h), not from the next allocator: a wait called from a signal handler that interrupted
// malloc must not ask for malloc's lock.
#pragma once

#include <atomic>
#include <cstdint>

#pragma GCC visibility push(hidden)

// Set by cold (defer_control_thread), cleared by the one start; read by wait_hooks.c too.
extern "C" std::atomic<bool> rsr_launch_pending;

namespace rsr::hot {

struct Launch {
  int64_t due_ns = 0;         // monotonic: allocations start the thread from then on
  int pid = 0;                // the process the thread is for (a vfork child is not it)
  void (*start)() = nullptr;  // cold: makes the thread (once)
};
extern Launch g_launch;

// The thread making the control thread: its allocations come from the bootstrap arena.
extern std::atomic<const void*> g_launching;

[[gnu::always_inline]] inline bool launch_pending() { return rsr_launch_pending.load(std::memory_order_acquire); }

// The quiet period is over: allocations may start the thread, and every read counts as a wait.
bool launch_due();

// Where an allocation's countdown expired while a start is pending: starts the thread when the
// quiet period is over and `caller` (the allocation's return address) is the program's.
void launch_from_allocation(uintptr_t caller);

// A sample's stack that wants libunwind (which the control thread loads): starts the thread now,
// quiet period or not, when the allocation's caller allows. True once it is started.
bool launch_for_stack();

// The wait hooks (wait_hooks.c, through rsr_before_wait): starts the thread now, unless inside
// the engine or in a vfork child.
void launch_before_wait();

}  // namespace rsr::hot

#pragma GCC visibility pop
