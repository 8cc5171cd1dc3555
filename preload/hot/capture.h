// Profiling captures, the part that runs on the service's threads (common/capture.md is the file
// format; cold/profiling.cc is the writer). May run inside malloc.
//
// While a background capture runs, every thread takes the slow path (engine.h): the capture's
// start clears every registered thread's `fast` byte, and fast_allowed() says no while
// g_capture.epoch is non-zero. A thread with a captured scope (C API) takes it too, for itself.
// With no capture the fast path pays nothing.
//
// Each thread appends raw events to a buffer of its own, taken from a fixed pool allocated by the
// writer side on the private heap. A full buffer, or one whose first event is 100 ms old (checked
// at the thread's next event), is pushed on a lock-free stack for the writer thread and replaced
// from the pool. When the pool is empty the writer has fallen behind: the thread waits for it to
// free a buffer (back-pressure, as heaptrack slows the program rather than lose events) for as
// long as the writer makes progress; a writer that frees nothing for kMaxWaitMs is stuck, and the
// capture then drops (and counts) every event that finds no buffer; with
// RSR_PROFILING_DROP_EVENTS=true it drops at once. A wait ends as soon as the capture does (the writer's stop below).
// Nothing else here waits for the writer or the disk. The writer wakes every few milliseconds by
// itself; a futex wake (a system call, costly in a virtual machine) is sent only when
// kWakeEvery buffers are waiting, long before the pool runs out.
//
// Stopping: the writer sets the epoch to 0, then waits (threads_wait_clear) until no thread is
// between its `capturing` flag and the end of its append (an asymmetric Dekker handshake, see
// engine.h); after that no thread touches the pool again, and the buffers threads still held are
// read as they are. A thread learns that its buffer belongs to an old capture from
// the epoch it remembers in TLS and drops the pointer without touching it.
//
// Collecting: the writer writes events in time order, so it must know when it has every event
// up to some time, including those in buffers threads are still filling (a quiet thread may hold
// one for minutes). It reads the clock, gives the capture a new epoch and waits as above: from
// then on each thread starts a new buffer, and the writer takes every buffer whose owner_epoch
// is an older one (their threads will not touch them again). Every event stamped before the
// clock reading is then in the writer's hands. A thread waiting for a free buffer holds none, so
// it lowers its `capturing` flag while it sleeps and stamps its event again once it has one.
#pragma once

#include <time.h>
#include <x86intrin.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine.h"

#pragma GCC visibility push(hidden)

namespace rsr::hot {

enum EventKind : uint32_t { kEventAlloc = 1, kEventFree = 2 };

struct Event {
  uint64_t ticks;  // capture_ticks(): TSC ticks, or CLOCK_MONOTONIC ns
  uint64_t address;
  uint64_t size;   // usable bytes (ALLOC)
  uint32_t stack;  // site index + 1, 0 unknown (ALLOC)
  uint32_t kind;
};
static_assert(sizeof(Event) == 32);

inline constexpr uint32_t kBufferEvents = 2048;  // 64 KiB of events per buffer
inline constexpr uint32_t kWakeEvery = 8;        // of a pool of 1024 (cold/profiling.cc)
inline constexpr int kMaxWaitMs = 1000;          // a writer freeing nothing this long is stuck
inline constexpr uint32_t kHanded = UINT32_MAX;   // an EventBuffer's owner_epoch (below)

struct EventBuffer {
  EventBuffer* next;  // link in the full stack
  uint32_t index;     // position in the pool
  uint32_t free_next; // free list link: index + 1, 0 ends
  uint64_t tid;
  uint64_t first_ticks;  // the first event's time
  std::atomic<uint32_t> count;
  // The epoch of the thread filling it; 0 while free, kHanded once the writer has it.
  std::atomic<uint32_t> owner_epoch;
  Event events[kBufferEvents];
};

// A captured scope's events: one thread's, up to `capacity`, the rest counted as dropped.
struct ScopeBuffer {
  ScopeBuffer* next;   // link in the finished stack
  uint64_t tid;
  uint64_t token;      // the scope's C API token
  uint64_t serial;     // the process's scope capture number
  int64_t start_mono_ns;
  int64_t start_real_ns;
  uint64_t dropped;
  uint32_t count;
  uint32_t capacity;
  char name[64];
  Event events[1];     // `capacity` of them
};

struct CaptureHot {
  std::atomic<uint32_t> epoch{0};  // the running background capture, 0 when none
  EventBuffer** pool = nullptr;
  uint32_t pool_size = 0;
  std::atomic<uint64_t> free_head{0};      // (tag << 32) | (index + 1)
  std::atomic<EventBuffer*> full{nullptr};
  std::atomic<uint32_t> handed{0};         // buffers pushed on `full` since the writer took it
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> waited{0};         // events that waited for a free buffer
  std::atomic<uint32_t> waiters{0};        // threads waiting for one now
  std::atomic<uint32_t> freed{0};          // futex word: bumped when a buffer is freed
  std::atomic<bool> drop_when_full{false}; // RSR_PROFILING_DROP_EVENTS
  std::atomic<ScopeBuffer*> scopes_done{nullptr};
  std::atomic<uint32_t> wake{0};           // futex word the writer sleeps on
  std::atomic<bool> scopes_on{false};      // RSR_PROFILING_ENABLED: scopes may be captured
  // A buffer whose first event is this many ticks old is handed over at the thread's next event
  // (a quiet thread's events reach the file close to their time); 0: only when full.
  std::atomic<uint64_t> handover_ticks{0};
  // Event times: the invariant TSC where the CPU has one (a third of clock_gettime's cost under
  // a virtual machine's clock source), converted to CLOCK_MONOTONIC ns by the writer from the
  // pair read at start-up (capture_clock_init). Fixed before any capture can start.
  bool tsc = false;
  uint64_t tsc0 = 0;
  int64_t ns0 = 0;
};
extern CaptureHot g_capture;

// Per thread, initial-exec TLS, all zero at start.
struct CaptureTls {
  EventBuffer* buffer;  // belongs to capture `epoch`
  uint32_t epoch;
  uint32_t tid;
  ScopeBuffer* scope;   // the captured scope open on this thread, if any
  uint64_t rng;
  struct StackMemo* memo;  // the thread's last walked stacks (unwind.h, sample.cc), on the private heap
  uint8_t memo_next;       // the memo a new stack replaces next
};
extern __thread CaptureTls t_capture __attribute__((tls_model("initial-exec")));

inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

[[gnu::always_inline]] inline uint64_t capture_ticks() {
  return g_capture.tsc ? __rdtsc() : static_cast<uint64_t>(monotonic_ns());
}
// Start-up: picks the clock and reads the anchor pair.
void capture_clock_init();

// Whether this thread's allocations and frees must take the slow path for a capture.
[[gnu::always_inline]] inline bool capture_wanted() {
  return g_capture.epoch.load(std::memory_order_relaxed) != 0 || t_capture.scope != nullptr;
}

// From alloc_slow / free_slow (registered threads, guard not held).
void capture_event(ThreadState& t, uint32_t kind, void* p, size_t usable, const CallerFrame* caller = nullptr);
// The thread is exiting: its partly filled buffer and its open scope go to the writer.
void capture_thread_exit(ThreadState& t);

// Writer side: pool handling and the hand-over (capture.cc).
void capture_pool_reset(EventBuffer** pool, uint32_t n);  // every buffer free
EventBuffer* capture_take_full();                          // the whole stack, newest first
ScopeBuffer* capture_take_scopes();
void capture_release(EventBuffer* b);                      // back to the free list
void capture_push_scope(ScopeBuffer* s);
void capture_wake_writer();
// Sleeps until woken or `timeout_ms` passed.
void capture_writer_sleep(int timeout_ms);
uint32_t capture_tid();

// The stack of the allocation being recorded, interned in the site table: site index + 1, or 0
// (sample.cc).
uint32_t capture_stack_id(const CallerFrame* caller = nullptr);
// At the thread's exit: gives its stack memo back to the private heap.
void release_thread_memo();

}  // namespace rsr::hot

#pragma GCC visibility pop
