// The tracking engine's fast path. Everything under preload/hot/ may run inside malloc: it never
// allocates, never takes a lock that an allocation path can wait on, never does I/O, and keeps
// errno as it found it.
//
// Per allocation (not sampled): one TLS guard test, two counter updates in the thread's own
// state, one subtract-and-test of the sampler. Per free (not sampled): the guard test, two
// counter updates, one byte load from the sampled-block filter. Sampled events go out of line.
//
// Exact counters live in each thread's TLS (plain stores by the owner, relaxed loads by readers)
// and are summed on demand over a registry of live threads; a thread's figures are folded into
// global totals when it exits. Live bytes are the allocator's usable sizes, so a free subtracts
// exactly what its allocation added.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sampler.h"

namespace rsr::hot {

// One per thread, in initial-exec TLS: trivially constructible (all zero) and destructible.
struct ThreadState {
  uint64_t allocs;        // owner writes, readers load relaxed
  uint64_t frees;
  uint64_t alloc_bytes;
  uint64_t free_bytes;
  int64_t pending;        // live-byte delta not yet folded into the global peak tracker
  SamplerState sampler;
  int32_t guard;          // > 0: inside the engine or an engine thread; calls pass through
  uint8_t registered;     // kUnregistered, kRegistered, kRetired
  uint8_t registering;
};
static_assert(sizeof(ThreadState) <= 80, "ThreadState must stay small: it is in every thread's TLS");

inline constexpr uint8_t kUnregistered = 0, kRegistered = 1, kRetired = 2;
inline constexpr int64_t kPeakFlushBytes = 64 * 1024;

extern __thread ThreadState t_state __attribute__((tls_model("initial-exec")));

// Engine modes. Before the constructor runs the engine counts but does not sample stacks.
inline constexpr int kStarting = 0, kActive = 1, kPassthrough = 2, kFailed = 3;

struct Engine {
  std::atomic<int> mode{kStarting};
  uint64_t interval = 512 * 1024;  // 0: sample everything (detailed tracking)
};
extern Engine g_engine;
// Set once at start-up when monitoring is off (or the process is setuid): hooks forward only.
extern bool g_passthrough;

// Out of line (threads.cc / sample.cc).
void count_slow(ThreadState& t, int64_t delta_bytes, bool is_alloc);
void flush_pending(ThreadState& t);
void sample_slow(ThreadState& t, void* p, size_t usable);
void forget_slow(void* p);
bool filter_maybe(const void* p);

inline void add_relaxed(uint64_t& field, uint64_t v) {
  __atomic_store_n(&field, __atomic_load_n(&field, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

[[gnu::always_inline]] inline void count_alloc(ThreadState& t, size_t usable) {
  if (t.registered != kRegistered) [[unlikely]] {
    count_slow(t, static_cast<int64_t>(usable), true);
    return;
  }
  add_relaxed(t.allocs, 1);
  add_relaxed(t.alloc_bytes, usable);
  if ((t.pending += static_cast<int64_t>(usable)) > kPeakFlushBytes) [[unlikely]] flush_pending(t);
}

[[gnu::always_inline]] inline void count_free(ThreadState& t, size_t usable) {
  if (t.registered != kRegistered) [[unlikely]] {
    count_slow(t, -static_cast<int64_t>(usable), false);
    return;
  }
  add_relaxed(t.frees, 1);
  add_relaxed(t.free_bytes, usable);
  if ((t.pending -= static_cast<int64_t>(usable)) < -kPeakFlushBytes) [[unlikely]] flush_pending(t);
}

// Called after the next allocator returned `p` (non-null) with `usable` bytes.
[[gnu::always_inline]] inline void on_alloc(void* p, size_t usable) {
  ThreadState& t = t_state;
  if (t.guard) return;
  count_alloc(t, usable);
  if (sampler_take(t.sampler, usable)) [[unlikely]] sample_slow(t, p, usable);
}

// Called before `p` (non-null, usable size `usable`) is handed back to the next allocator.
[[gnu::always_inline]] inline void on_free(void* p, size_t usable) {
  ThreadState& t = t_state;
  if (t.guard) return;
  count_free(t, usable);
  if (filter_maybe(p)) [[unlikely]] forget_slow(p);
}

// Exact process-wide figures, summed over live threads and retired ones.
struct Totals {
  uint64_t allocs, frees, alloc_bytes, free_bytes;
  uint64_t peak_live_bytes;
  uint32_t threads;
};
Totals read_totals();

// Holds the guard for a scope: allocations inside pass straight through, uncounted.
struct GuardScope {
  GuardScope() { ++t_state.guard; }
  ~GuardScope() { --t_state.guard; }
  GuardScope(const GuardScope&) = delete;
  GuardScope& operator=(const GuardScope&) = delete;
};

// Fork support (threads.cc): prepare takes the registry lock, parent releases it, child folds
// every other thread's counters into the retired totals (those threads do not exist there).
void threads_atfork_prepare();
void threads_atfork_parent();
void threads_atfork_child();

}  // namespace rsr::hot
