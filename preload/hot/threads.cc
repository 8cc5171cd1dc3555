// Registry of threads' counters. May run inside malloc.
//
// A thread registers its TLS counters at its first allocation (once) and retires them from a
// pthread key destructor when it exits. The registry's spin lock is taken only then and by
// readers summing totals: never on an allocation's fast path.
#include <link.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capture.h"
#include "engine.h"
#include "launch.h"
#include "unwind.h"

namespace rsr::hot {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));
constinit Engine g_engine;
bool g_passthrough = false;

namespace {

constexpr int kMaxThreads = 4096;

RSR_LARGE_BSS ThreadState* g_threads[kMaxThreads];
int g_thread_high = 0;  // slots [0, g_thread_high) may be in use
std::atomic<bool> g_lock{false};

// Totals of exited threads and of calls made while a thread could not use its own counters.
std::atomic<uint64_t> g_retired_allocs{0}, g_retired_frees{0};
std::atomic<uint64_t> g_retired_alloc_bytes{0}, g_retired_free_bytes{0};
// Live bytes folded in so far (threads fold their net change every kPeakFlushBytes allocated)
// and the highest value that sum reached.
std::atomic<int64_t> g_live_folded{0};
std::atomic<uint64_t> g_peak{0};

std::atomic<int> g_key_state{0};  // 0 none, 1 creating, 2 ready
pthread_key_t g_key;

void lock() {
  while (g_lock.exchange(true, std::memory_order_acquire)) sched_yield();
}
void unlock() { g_lock.store(false, std::memory_order_release); }

// Everything the fast path needs but that no capture wants the thread's events.
bool plain_allowed(const ThreadState& t) {
  return field(t.guard) == 0 && field(t.registered) == kRegistered && !g_passthrough && real::g_glibc_chunks;
}

bool fast_allowed(const ThreadState& t) { return plain_allowed(t) && !capture_wanted(); }

// Sets the owner's gate. The fence and second look pair with threads_capture_started(): either
// this thread sees the capture, or the sweep's store of 0 comes after this store.
// Only a change to 1 pays for the fence (once per sample, or once after a capture); a change to
// kFastCapture needs none (the capture path records, and sees a capture's end by itself).
void set_fast(ThreadState& t) {
  if (!fast_allowed(t)) {
    const uint8_t to = plain_allowed(t) ? kFastCapture : 0;
    if (t.fast != to) __atomic_store_n(&t.fast, to, __ATOMIC_RELAXED);
    return;
  }
  if (t.fast == 1) return;
  g_filter[filter_index(nullptr)].store(255, std::memory_order_relaxed);  // free(NULL): see free_to_next
  __atomic_store_n(&t.fast, 1, __ATOMIC_SEQ_CST);
  if (g_capture.epoch.load(std::memory_order_seq_cst) != 0) __atomic_store_n(&t.fast, 0, __ATOMIC_RELAXED);
}

void raise_peak(int64_t live) {
  if (live <= 0) return;
  uint64_t seen = g_peak.load(std::memory_order_relaxed);
  while (static_cast<uint64_t>(live) > seen &&
         !g_peak.compare_exchange_weak(seen, static_cast<uint64_t>(live), std::memory_order_relaxed)) {
  }
}

void fold_live(int64_t delta) { raise_peak(g_live_folded.fetch_add(delta, std::memory_order_relaxed) + delta); }

// The thread's live bytes (usable), as its counters stand.
int64_t net_of(const ThreadState& t) {
  return static_cast<int64_t>(
      usable_of(__atomic_load_n(&t.alloc_bytes, __ATOMIC_RELAXED), __atomic_load_n(&t.allocs, __ATOMIC_RELAXED)) -
      usable_of(__atomic_load_n(&t.free_bytes, __ATOMIC_RELAXED), __atomic_load_n(&t.frees, __ATOMIC_RELAXED)));
}

void fold_into_retired(ThreadState& t) {
  const uint64_t allocs = __atomic_load_n(&t.allocs, __ATOMIC_RELAXED);
  const uint64_t frees = __atomic_load_n(&t.frees, __ATOMIC_RELAXED);
  g_retired_allocs.fetch_add(allocs, std::memory_order_relaxed);
  g_retired_frees.fetch_add(frees, std::memory_order_relaxed);
  g_retired_alloc_bytes.fetch_add(usable_of(__atomic_load_n(&t.alloc_bytes, __ATOMIC_RELAXED), allocs),
                                  std::memory_order_relaxed);
  g_retired_free_bytes.fetch_add(usable_of(__atomic_load_n(&t.free_bytes, __ATOMIC_RELAXED), frees),
                                 std::memory_order_relaxed);
  fold_live(net_of(t) - t.flushed_net);
  __atomic_store_n(&t.allocs, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.frees, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.alloc_bytes, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.free_bytes, 0, __ATOMIC_RELAXED);
  t.flushed_net = 0;
}

// Key destructor: the thread is exiting. Later calls (other keys' destructors) count globally.
void retire(void*) {
  ThreadState& t = t_state;
  if (t.registered != kRegistered) return;
  capture_thread_exit(t);
  t.fast = 0;
  lock();
  for (int i = 0; i < g_thread_high; ++i) {
    if (g_threads[i] == &t) {
      g_threads[i] = nullptr;
      break;
    }
  }
  fold_into_retired(t);
  t.registered = kRetired;
  unlock();
}

bool ensure_key() {
  int s = g_key_state.load(std::memory_order_acquire);
  if (s == 2) return true;
  if (s == 0 && g_key_state.compare_exchange_strong(s, 1)) {
    if (pthread_key_create(&g_key, retire) != 0) {
      g_key_state.store(0);
      return false;
    }
    g_key_state.store(2, std::memory_order_release);
    return true;
  }
  return false;  // another thread is creating it; count globally meanwhile
}

void try_register(ThreadState& t) {
  if (t.registering || !ensure_key()) return;
  t.registering = 1;
  bool ok = false;
  lock();
  for (int i = 0; i < kMaxThreads; ++i) {
    if (g_threads[i] == nullptr) {
      g_threads[i] = &t;
      if (i >= g_thread_high) g_thread_high = i + 1;
      ok = true;
      break;
    }
  }
  unlock();
  if (ok) {
    // With the guard held: pthread_setspecific may allocate for high key numbers.
    ++t.guard;
    pthread_setspecific(g_key, &t);
    --t.guard;
    t.registered = kRegistered;
    set_fast(t);
  }
  t.registering = 0;
}

// Counts straight into the global totals: retired threads, a full registry, re-entry while
// registering.
void count_global(int64_t delta) {
  if (delta >= 0) {
    g_retired_allocs.fetch_add(1, std::memory_order_relaxed);
    g_retired_alloc_bytes.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  } else {
    g_retired_frees.fetch_add(1, std::memory_order_relaxed);
    g_retired_free_bytes.fetch_add(static_cast<uint64_t>(-delta), std::memory_order_relaxed);
  }
  fold_live(delta);
}

}  // namespace

// The countdown ran out on an allocation of `size` counted bytes at `p`, returning to `caller`
// (null: not known): a pending start may be due, then the peak's fold and the sample.
void countdown_ran_out(ThreadState& t, void* p, uint64_t size, const CallerFrame* caller) {
  if (launch_pending() && caller) [[unlikely]] launch_from_allocation(caller->pc);
  countdown_expired(t, p, size, caller);
}

// The capture path (`fast` is kFastCapture): what alloc_slow and free_slow do for a registered
// thread without the guard, on glibc's heap, with the tests that this state answers left out.
void alloc_captured(ThreadState& t, void* p, const CallerFrame* caller) {
  const size_t usable = real::glibc_usable_size(p);
  tally_alloc(t, usable);
  const uint64_t size = counted(usable);
  if ((t.countdown.left -= static_cast<int64_t>(size)) < 0) countdown_ran_out(t, p, size, caller);
  if (capture_wanted()) [[likely]] capture_event(t, kEventAlloc, p, usable, caller);
  else set_fast(t);  // the capture ended
}

void free_captured(ThreadState& t, void* p) {
  const size_t usable = real::glibc_usable_size(p);
  tally_free(t, usable);
  if (capture_wanted()) [[likely]] capture_event(t, kEventFree, p, usable);
  else set_fast(t);
}

// A call nested in next_usable_size() is the next allocator's own business: not counted.
void alloc_slow(ThreadState& t, void* p, const CallerFrame* caller) {
  if (field(t.fast) == kFastCapture) return alloc_captured(t, p, caller);
  if (g_passthrough || field(t.in_next)) return;
  if (field(t.registered) == kUnregistered) try_register(t);
  const size_t usable = next_usable_size(t, p);
  if (field(t.registered) == kRegistered && !field(t.registering)) tally_alloc(t, usable);
  else count_global(static_cast<int64_t>(usable));
  const uint64_t size = counted(usable);
  if (field(t.guard) == 0 && (t.countdown.left -= static_cast<int64_t>(size)) < 0)
    countdown_ran_out(t, p, size, caller);
  if (capture_wanted()) [[unlikely]] capture_event(t, kEventAlloc, p, usable, caller);
  else if (field(t.guard) == 0 && field(t.registered) == kRegistered) set_fast(t);  // a capture ended
}

void free_slow(ThreadState& t, void* p) {
  if (field(t.fast) == kFastCapture) return free_captured(t, p);
  if (g_passthrough || field(t.in_next)) return;
  if (field(t.registered) == kUnregistered) try_register(t);
  const size_t usable = next_usable_size(t, p);
  if (field(t.registered) == kRegistered && !field(t.registering)) tally_free(t, usable);
  else count_global(-static_cast<int64_t>(usable));
  if (capture_wanted()) [[unlikely]] capture_event(t, kEventFree, p, usable);
  else if (field(t.guard) == 0 && field(t.registered) == kRegistered) set_fast(t);
}

}  // namespace rsr::hot

// alloc_slow_ret's second half, with the caller's registers as they were at its entry.
extern "C" [[gnu::visibility("hidden"), gnu::used]] void* rsr_alloc_slow_from(rsr::hot::ThreadState& t, void* p,
                                                                              uintptr_t pc, uintptr_t sp, uintptr_t bp) {
  const rsr::hot::CallerFrame caller{pc, sp, bp};
  rsr::hot::alloc_slow(t, p, &caller);
  return p;
}

// alloc_countdown_ret's second half, likewise.
extern "C" [[gnu::visibility("hidden"), gnu::used]] void* rsr_alloc_countdown_from(rsr::hot::ThreadState& t,
                                                                                   void* p, size_t size, uintptr_t pc,
                                                                                   uintptr_t sp, uintptr_t bp) {
  const rsr::hot::CallerFrame caller{pc, sp, bp};
  rsr::hot::countdown_ran_out(t, p, size, &caller);
  return p;
}

namespace rsr::hot {

// Reached by a tail call from an allocation hook (engine.h, on_alloc): the hook's frame is gone,
// so the word on top of the stack is the return address into the program, rsp + 8 the
// program's stack pointer after the call, and rbp still the program's. They are passed on (a
// capture's walk starts there) before compiled code could change any of them. When the call was
// not a tail call the return address is in the library, and the walk ignores it.
[[gnu::naked]] void* alloc_slow_ret(ThreadState&, void*) {
  __asm__(
      "movq (%rsp), %rdx\n\t"
      "leaq 8(%rsp), %rcx\n\t"
      "movq %rbp, %r8\n\t"
      "jmp rsr_alloc_slow_from\n\t");
}

// Reached by a tail call from an allocation hook, like alloc_slow_ret, whose way of passing the
// caller's registers on it shares.
[[gnu::naked]] void* alloc_countdown_ret(ThreadState&, void*, size_t) {
  __asm__(
      "movq (%rsp), %rcx\n\t"
      "leaq 8(%rsp), %r8\n\t"
      "movq %rbp, %r9\n\t"
      "jmp rsr_alloc_countdown_from\n\t");
}

constinit Launch g_launch;
constinit std::atomic<const void*> g_launching{nullptr};

}  // namespace rsr::hot

extern "C" {
constinit std::atomic<bool> rsr_launch_pending{false};
}

namespace rsr::hot {

namespace {

// The start of the object that holds `pc`, 0 for code in none (generated code).
uintptr_t object_of(const void* pc) {
  dl_find_object found;
  if (_dl_find_object(const_cast<void*>(pc), &found) != 0) return 0;
  return reinterpret_cast<uintptr_t>(found.dlfo_map_start);
}

// The allocation's caller of the last countdown that expired while a start was pending: a stack
// that wants libunwind starts the thread for it (launch_for_stack).
__thread uintptr_t t_launch_caller;

// A safe point of this process (hot/launch.h), not of a vfork child borrowing its memory. Asked
// only while a start is pending, when g_launch is set.
bool this_process() { return syscall(SYS_getpid) == g_launch.pid; }

// Not called by code that may hold its own locks while it allocates (hot/launch.h).
bool called_by_program(uintptr_t caller) {
  if (caller == 0) return false;
  const uintptr_t object = object_of(reinterpret_cast<const void*>(caller));
  if (object == 0) return true;  // generated code
  const void* const unsafe[] = {reinterpret_cast<const void*>(&clock_gettime),             // libc
                                reinterpret_cast<const void*>(&_dl_find_object),           // the loader
                                reinterpret_cast<const void*>(real::fn.malloc),            // the next allocator
                                reinterpret_cast<const void*>(&launch_from_allocation)};  // this library
  for (const void* code : unsafe)
    if (object_of(code) == object) return false;
  return true;
}

}  // namespace

bool launch_due() { return monotonic_ns() >= g_launch.due_ns; }

void launch_from_allocation(uintptr_t caller) {
  t_launch_caller = caller;
  if (!launch_due() || t_state.guard != 0 || !this_process() || !called_by_program(caller)) return;
  g_launch.start();  // otherwise a later allocation will
}

bool launch_for_stack() {
  if (launch_pending() && this_process() && called_by_program(t_launch_caller)) g_launch.start();
  return !launch_pending();
}

void launch_before_wait() {
  if (t_state.guard == 0 && this_process()) g_launch.start();
}

void free_slow_then_next(ThreadState& t, void* p) {
  if (p == nullptr) return;
  free_slow(t, p);
  real::fn.free(p);
}

void countdown_expired(ThreadState& t, void* p, size_t size, const CallerFrame* caller) {
  if (countdown_charge(t.countdown, t.sampler, kPeakFlushBytes)) {
    const int64_t net = net_of(t);
    const int64_t delta = net - t.flushed_net;
    t.flushed_net = net;
    fold_live(delta);
  }
  if (t.sampler.bytes_until_sample < 0) sample_slow(t, p, size, caller);
  countdown_arm(t.countdown, t.sampler);
}

void undo_free(size_t usable) {
  ThreadState& t = t_state;
  if (g_passthrough) return;
  if (t.registered == kRegistered) {
    add_relaxed(t.frees, static_cast<uint64_t>(-1));
    add_relaxed(t.free_bytes, -counted(usable));
  } else {
    g_retired_frees.fetch_sub(1, std::memory_order_relaxed);
    g_retired_free_bytes.fetch_sub(usable, std::memory_order_relaxed);
    fold_live(static_cast<int64_t>(usable));
  }
}

void guard_enter() {
  ThreadState& t = t_state;
  ++t.guard;
  t.fast = 0;
}

void guard_leave() {
  ThreadState& t = t_state;
  --t.guard;
  set_fast(t);
}

void refresh_fast() { set_fast(t_state); }

void threads_capture_started() {
  lock();
  for (int i = 0; i < g_thread_high; ++i)
    if (ThreadState* t = g_threads[i]) __atomic_store_n(&t->fast, 0, __ATOMIC_SEQ_CST);
  unlock();
}

bool g_light_barrier = false;

void barrier_register() {
  const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
  g_light_barrier = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
                    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
}

void barrier_heavy() {
  if (!g_light_barrier || syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) != 0)
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool threads_wait_clear(uint8_t ThreadState::*flag, int max_ms) {
  barrier_heavy();
  bool idle = true;
  lock();
  for (int i = 0; i < g_thread_high && idle; ++i) {
    ThreadState* t = g_threads[i];
    if (!t) continue;
    const int64_t start = monotonic_ns();
    while (__atomic_load_n(&(t->*flag), __ATOMIC_SEQ_CST) != 0) {
      if (monotonic_ns() - start >= int64_t{max_ms} * 1000000) {
        idle = false;
        break;
      }
      sched_yield();
    }
  }
  unlock();
  return idle;
}

Totals read_totals() {
  Totals r{};
  r.allocs = g_retired_allocs.load(std::memory_order_relaxed);
  r.frees = g_retired_frees.load(std::memory_order_relaxed);
  r.alloc_bytes = g_retired_alloc_bytes.load(std::memory_order_relaxed);
  r.free_bytes = g_retired_free_bytes.load(std::memory_order_relaxed);
  lock();
  for (int i = 0; i < g_thread_high; ++i) {
    ThreadState* t = g_threads[i];
    if (!t) continue;
    ++r.threads;
    const uint64_t alloc_bytes = __atomic_load_n(&t->alloc_bytes, __ATOMIC_RELAXED);
    const uint64_t free_bytes = __atomic_load_n(&t->free_bytes, __ATOMIC_RELAXED);
    const uint64_t allocs = __atomic_load_n(&t->allocs, __ATOMIC_RELAXED);
    const uint64_t frees = __atomic_load_n(&t->frees, __ATOMIC_RELAXED);
    r.allocs += allocs;
    r.frees += frees;
    r.alloc_bytes += usable_of(alloc_bytes, allocs);  // the owner may be counting meanwhile
    r.free_bytes += usable_of(free_bytes, frees);
  }
  unlock();
  const uint64_t live = r.alloc_bytes >= r.free_bytes ? r.alloc_bytes - r.free_bytes : 0;
  raise_peak(static_cast<int64_t>(live));
  r.peak_live_bytes = g_peak.load(std::memory_order_relaxed);
  return r;
}

void threads_atfork_prepare() { lock(); }
void threads_atfork_parent() { unlock(); }

void threads_atfork_child() {
  ThreadState* self = &t_state;
  for (int i = 0; i < g_thread_high; ++i) {
    ThreadState* t = g_threads[i];
    if (t && t != self) {
      fold_into_retired(*t);  // its memory is still mapped here; the thread is gone
      g_threads[i] = nullptr;
    }
  }
  unlock();
}

}  // namespace rsr::hot

// wait_hooks.c's side of hot/launch.h.
extern "C" [[gnu::visibility("hidden")]] void rsr_before_wait() { rsr::hot::launch_before_wait(); }
extern "C" [[gnu::visibility("hidden")]] int rsr_launch_due() { return rsr::hot::launch_due(); }
