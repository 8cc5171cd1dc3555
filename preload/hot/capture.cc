// Recording of capture events on the service's threads (see capture.h). May run inside malloc.
#include "capture.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cpuid.h>

#include <cerrno>
#include <cstdint>

namespace rsr::hot {

constinit CaptureHot g_capture;
__thread CaptureTls t_capture __attribute__((tls_model("initial-exec")));

namespace {

// Tagged free list over pool indices, so a pop never suffers from ABA.
EventBuffer* pool_pop() {
  CaptureHot& c = g_capture;
  uint64_t head = c.free_head.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t at = static_cast<uint32_t>(head);
    if (at == 0) return nullptr;
    EventBuffer* b = c.pool[at - 1];
    const uint64_t next = ((head >> 32) + 1) << 32 | __atomic_load_n(&b->free_next, __ATOMIC_RELAXED);
    if (c.free_head.compare_exchange_weak(head, next, std::memory_order_acq_rel, std::memory_order_acquire))
      return b;
  }
}

void hand_over(EventBuffer* b) {
  CaptureHot& c = g_capture;
  b->owner_epoch.store(kHanded, std::memory_order_relaxed);
  EventBuffer* head = c.full.load(std::memory_order_relaxed);
  do {
    b->next = head;
  } while (!c.full.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_relaxed));
  if (c.handed.fetch_add(1, std::memory_order_relaxed) + 1 == kWakeEvery) capture_wake_writer();
}

// The writer fell behind and every buffer is taken: wait until it frees one, or until the
// capture ends. The writer is woken first, then every 16 turns while waiting. The thread holds no
// buffer meanwhile, so it lowers its `capturing` flag while it sleeps (the writer may collect
// without waiting for it) and raises it again before it looks at the pool; `epoch` is updated to
// the capture's current one. A writer that frees no buffer at all for kMaxWaitMs is stuck (a
// disk that does not answer): the capture drops from then on, so the service is held up once,
// not at every allocation. A thread that keeps losing freed buffers to others while the writer
// makes progress waits on, up to kMaxWaitMs * 10, and then drops only this event.
EventBuffer* wait_for_buffer(ThreadState& t, uint32_t& epoch) {
  CaptureHot& c = g_capture;
  c.waited.fetch_add(1, std::memory_order_relaxed);
  c.waiters.fetch_add(1, std::memory_order_seq_cst);
  EventBuffer* b = nullptr;
  bool stuck = false;
  const int64_t start = monotonic_ns();
  int64_t progress_at = start;
  uint32_t progress = c.freed.load(std::memory_order_seq_cst);
  for (int turn = 0;; ++turn) {
    const uint32_t seen = c.freed.load(std::memory_order_seq_cst);
    if ((b = pool_pop()) != nullptr) break;
    const int64_t now = monotonic_ns();
    if (seen != progress) {
      progress = seen;
      progress_at = now;
    } else if (now - progress_at >= int64_t{kMaxWaitMs} * 1000000) {
      stuck = true;
      break;
    }
    if (now - start >= int64_t{kMaxWaitMs} * 10000000) break;
    if (turn % 16 == 0) capture_wake_writer();
    __atomic_store_n(&t.capturing, 0, __ATOMIC_RELEASE);
    timespec one_ms{0, 1000000};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&c.freed), FUTEX_WAIT_PRIVATE, seen, &one_ms, nullptr, 0);
    const uint32_t now_epoch = raise_then_load(t.capturing, c.epoch);
    if (now_epoch == 0) break;  // the capture ended
    epoch = now_epoch;
  }
  c.waiters.fetch_sub(1, std::memory_order_release);
  if (stuck && c.epoch.load(std::memory_order_acquire) == epoch) c.drop_when_full.store(true, std::memory_order_relaxed);
  return b;
}

void append_background(ThreadState& t, CaptureTls& tls, uint32_t epoch, Event& e) {
  if (tls.epoch != epoch) {  // the buffer, if any, belonged to an earlier capture or collection
    tls.buffer = nullptr;
    tls.epoch = epoch;
  }
  EventBuffer* b = tls.buffer;
  if (!b) {
    const KeepErrno keep;  // a wait for a buffer makes system calls
    b = pool_pop();
    if (!b && !g_capture.drop_when_full.load(std::memory_order_relaxed)) {
      b = wait_for_buffer(t, epoch);
      tls.epoch = epoch;
      e.ticks = capture_ticks();  // after the wait: later than any collection it slept through
    }
    if (!b) {
      g_capture.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    b->tid = tls.tid;
    b->first_ticks = e.ticks;
    b->count.store(0, std::memory_order_relaxed);
    b->owner_epoch.store(epoch, std::memory_order_release);
    tls.buffer = b;
  }
  const uint32_t n = b->count.load(std::memory_order_relaxed);
  b->events[n] = e;
  b->count.store(n + 1, std::memory_order_release);
  const uint64_t age = g_capture.handover_ticks.load(std::memory_order_relaxed);
  if (n + 1 == kBufferEvents || (age != 0 && e.ticks - b->first_ticks >= age)) {
    const KeepErrno keep;  // the writer may be woken
    tls.buffer = nullptr;
    hand_over(b);
  }
}

void append_scope(ScopeBuffer* s, const Event& e) {
  if (s->count < s->capacity) s->events[s->count++] = e;
  else ++s->dropped;
}

}  // namespace

void capture_clock_init() {
  // CPUID 0x80000007, EDX bit 8: the TSC runs at a constant rate in every P-, C- and T-state.
  unsigned a, b, c, d;
  bool invariant = false;
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000007 && __get_cpuid(0x80000007, &a, &b, &c, &d))
    invariant = (d & (1u << 8)) != 0;
  g_capture.ns0 = monotonic_ns();
  g_capture.tsc0 = __rdtsc();
  g_capture.tsc = invariant;
}

uint32_t capture_tid() {
  CaptureTls& tls = t_capture;
  if (tls.tid == 0) {
    const KeepErrno keep;
    tls.tid = static_cast<uint32_t>(syscall(SYS_gettid));
  }
  return tls.tid;
}

void capture_event(ThreadState& t, uint32_t kind, void* p, size_t usable, const CallerFrame* caller) {
  if (field(t.capturing) || field(t.guard) != 0 || field(t.registered) != kRegistered) return;  // re-entry (signal handler)
  const uint32_t epoch = raise_then_load(t.capturing, g_capture.epoch);
  CaptureTls& tls = t_capture;
  if (epoch != 0 || tls.scope) {
    // errno: the ways that may make system calls keep it themselves (a thread's first event, a
    // stack walked afresh, a buffer handed over or waited for); the common way makes none.
    capture_tid();
    Event e;
    e.address = reinterpret_cast<uintptr_t>(p);
    e.size = kind == kEventAlloc ? usable : 0;
    e.stack = kind == kEventAlloc ? capture_stack_id(caller) : 0;
    e.kind = kind;
    e.ticks = capture_ticks();
    if (epoch != 0) append_background(t, tls, epoch, e);
    if (tls.scope) append_scope(tls.scope, e);
  }
  __atomic_store_n(&t.capturing, 0, __ATOMIC_RELEASE);
}

void capture_thread_exit(ThreadState& t) {
  CaptureTls& tls = t_capture;
  __atomic_store_n(&t.capturing, 1, __ATOMIC_SEQ_CST);
  const uint32_t epoch = g_capture.epoch.load(std::memory_order_seq_cst);
  if (epoch != 0 && tls.epoch == epoch && tls.buffer) hand_over(tls.buffer);
  tls.buffer = nullptr;
  if (ScopeBuffer* s = tls.scope) {
    tls.scope = nullptr;
    capture_push_scope(s);
  }
  __atomic_store_n(&t.capturing, 0, __ATOMIC_RELEASE);
  release_thread_memo();
}

void capture_pool_reset(EventBuffer** pool, uint32_t n) {
  CaptureHot& c = g_capture;
  c.pool = pool;
  c.pool_size = n;
  for (uint32_t i = 0; i < n; ++i) {
    pool[i]->index = i;
    pool[i]->owner_epoch.store(0, std::memory_order_relaxed);
    pool[i]->free_next = i + 1 < n ? i + 2 : 0;
  }
  const uint64_t tag = (c.free_head.load() >> 32) + 1;
  c.free_head.store(tag << 32 | (n ? 1 : 0), std::memory_order_release);
  c.full.store(nullptr, std::memory_order_release);
  c.dropped.store(0, std::memory_order_relaxed);
  c.waited.store(0, std::memory_order_relaxed);
}

EventBuffer* capture_take_full() {
  g_capture.handed.store(0, std::memory_order_relaxed);
  return g_capture.full.exchange(nullptr, std::memory_order_acquire);
}

ScopeBuffer* capture_take_scopes() { return g_capture.scopes_done.exchange(nullptr, std::memory_order_acquire); }

void capture_release(EventBuffer* b) {
  CaptureHot& c = g_capture;
  b->owner_epoch.store(0, std::memory_order_relaxed);
  uint64_t head = c.free_head.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    __atomic_store_n(&b->free_next, static_cast<uint32_t>(head), __ATOMIC_RELAXED);
    next = ((head >> 32) + 1) << 32 | (b->index + 1);
  } while (!c.free_head.compare_exchange_weak(head, next, std::memory_order_acq_rel, std::memory_order_relaxed));
  c.freed.fetch_add(1, std::memory_order_seq_cst);
  if (c.waiters.load(std::memory_order_seq_cst) != 0)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&c.freed), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

void capture_push_scope(ScopeBuffer* s) {
  CaptureHot& c = g_capture;
  ScopeBuffer* head = c.scopes_done.load(std::memory_order_relaxed);
  do {
    s->next = head;
  } while (!c.scopes_done.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
  capture_wake_writer();
}

void capture_wake_writer() {
  g_capture.wake.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&g_capture.wake), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void capture_writer_sleep(int timeout_ms) {
  const uint32_t seen = g_capture.wake.load(std::memory_order_acquire);
  if (g_capture.full.load(std::memory_order_acquire) || g_capture.scopes_done.load(std::memory_order_acquire))
    return;
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&g_capture.wake), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
}

}  // namespace rsr::hot
