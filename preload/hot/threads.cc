// Registry of threads' counters. May run inside malloc.
//
// A thread registers its TLS counters at its first allocation (once) and retires them from a
// pthread key destructor when it exits. The registry's spin lock is taken only then and by
// readers summing totals: never on an allocation's fast path.
#include <pthread.h>
#include <sched.h>

#include "engine.h"

namespace rsr::hot {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));
constinit Engine g_engine;
bool g_passthrough = false;

namespace {

constexpr int kMaxThreads = 4096;

ThreadState* g_threads[kMaxThreads];
int g_thread_high = 0;  // slots [0, g_thread_high) may be in use
std::atomic<bool> g_lock{false};

// Totals of exited threads and of calls made while a thread could not use its own slot.
std::atomic<uint64_t> g_retired_allocs{0}, g_retired_frees{0};
std::atomic<uint64_t> g_retired_alloc_bytes{0}, g_retired_free_bytes{0};
// Live bytes folded in so far (sum of flushed deltas) and the highest value it reached.
std::atomic<int64_t> g_live_flushed{0};
std::atomic<uint64_t> g_peak{0};

std::atomic<int> g_key_state{0};  // 0 none, 1 creating, 2 ready
pthread_key_t g_key;

void lock() {
  while (g_lock.exchange(true, std::memory_order_acquire)) sched_yield();
}
void unlock() { g_lock.store(false, std::memory_order_release); }

void raise_peak(int64_t live) {
  if (live <= 0) return;
  uint64_t seen = g_peak.load(std::memory_order_relaxed);
  while (static_cast<uint64_t>(live) > seen &&
         !g_peak.compare_exchange_weak(seen, static_cast<uint64_t>(live), std::memory_order_relaxed)) {
  }
}

void fold_into_retired(ThreadState& t) {
  g_retired_allocs.fetch_add(__atomic_load_n(&t.allocs, __ATOMIC_RELAXED), std::memory_order_relaxed);
  g_retired_frees.fetch_add(__atomic_load_n(&t.frees, __ATOMIC_RELAXED), std::memory_order_relaxed);
  g_retired_alloc_bytes.fetch_add(__atomic_load_n(&t.alloc_bytes, __ATOMIC_RELAXED),
                                  std::memory_order_relaxed);
  g_retired_free_bytes.fetch_add(__atomic_load_n(&t.free_bytes, __ATOMIC_RELAXED),
                                 std::memory_order_relaxed);
  raise_peak(g_live_flushed.fetch_add(t.pending, std::memory_order_relaxed) + t.pending);
  __atomic_store_n(&t.allocs, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.frees, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.alloc_bytes, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&t.free_bytes, 0, __ATOMIC_RELAXED);
  t.pending = 0;
}

// Key destructor: the thread is exiting. Later calls (other keys' destructors) count globally.
void retire(void*) {
  ThreadState& t = t_state;
  if (t.registered != kRegistered) return;
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

bool try_register(ThreadState& t) {
  if (t.registering || !ensure_key()) return false;
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
  }
  t.registering = 0;
  return ok;
}

}  // namespace

void count_slow(ThreadState& t, int64_t delta, bool is_alloc) {
  if (t.registered == kUnregistered && try_register(t)) {
    if (is_alloc) count_alloc(t, static_cast<size_t>(delta));
    else count_free(t, static_cast<size_t>(-delta));
    return;
  }
  // Retired, registering, or no slot: count straight into the global totals.
  if (is_alloc) {
    g_retired_allocs.fetch_add(1, std::memory_order_relaxed);
    g_retired_alloc_bytes.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
  } else {
    g_retired_frees.fetch_add(1, std::memory_order_relaxed);
    g_retired_free_bytes.fetch_add(static_cast<uint64_t>(-delta), std::memory_order_relaxed);
  }
  raise_peak(g_live_flushed.fetch_add(delta, std::memory_order_relaxed) + delta);
}

void flush_pending(ThreadState& t) {
  const int64_t d = t.pending;
  t.pending = 0;
  raise_peak(g_live_flushed.fetch_add(d, std::memory_order_relaxed) + d);
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
    r.allocs += __atomic_load_n(&t->allocs, __ATOMIC_RELAXED);
    r.frees += __atomic_load_n(&t->frees, __ATOMIC_RELAXED);
    r.alloc_bytes += __atomic_load_n(&t->alloc_bytes, __ATOMIC_RELAXED);
    r.free_bytes += __atomic_load_n(&t->free_bytes, __ATOMIC_RELAXED);
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
