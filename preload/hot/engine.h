// The tracking engine's fast path. Everything under preload/hot/ may run inside malloc: it never
// allocates, never takes a lock that an allocation path can wait on, never does I/O, and keeps
// errno as it found it.
//
// Exact counters live in each thread's TLS (plain stores by the owner, relaxed loads by readers)
// and are summed on demand over a registry of live threads; a thread's figures are folded into
// global totals when it exits. Live bytes are the allocator's usable sizes, so a free subtracts
// exactly what its allocation added. A thread's byte counters count each block as its usable
// size plus kCountedSlack (for a chunk of glibc's heap: the chunk's size, as its header gives it
// in one instruction); whoever reads them takes kCountedSlack per block back off (usable_of).
// The sampler's byte clock runs on the same counted sizes (sample_weight).
//
// One per-thread byte, `fast`, says whether the fast path may run: the thread is registered, it
// holds no guard, monitoring is on and the next allocator's chunk headers can be read directly.
// Everything else (first call of a thread, recursion from the engine, pass-through, another
// allocator) takes the out-of-line slow path, which decides. `fast` is kFastCapture instead of 1
// when all of that holds but a capture wants the thread's events: the slow path then goes
// straight to recording (threads.cc), without testing again what the byte already says.
//
// Cost, not sampled: allocation = gate test (before the call to the next allocator), header
// load, two counter updates, one subtract-and-test of the countdown; free = gate test, header
// load, two counter updates, one byte load from the sampled-block filter. A profiling capture
// (capture.h) turns the gate off while it runs, so it costs nothing when none runs.
//
// The countdown. Two things happen every so many allocated bytes: the sampler's next mark
// (sampler.h) and the fold of the thread's live bytes into the process's peak (every
// kPeakFlushBytes). The fast path counts down to the nearer of the two only; the slow path
// (countdown_expired) charges the bytes counted down since it was armed to both, does what is
// due, and arms it again.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "../real.h"
#include "sampler.h"

#pragma GCC visibility push(hidden)

// Large zero-initialised tables go after the library's other data (the .lbss section): the few
// pages of small variables that every process writes at start-up then lie together.
#define RSR_LARGE_BSS [[gnu::section(".lbss.rsr")]]

namespace rsr::hot {

// One per thread, in initial-exec TLS: trivially constructible (all zero) and destructible.
struct ThreadState {
  uint64_t allocs;       // owner writes, readers load relaxed
  uint64_t frees;
  uint64_t alloc_bytes;  // counted bytes (see above)
  uint64_t free_bytes;
  Countdown countdown;   // bytes to allocate before the slow path runs (see above)
  int64_t flushed_net;   // alloc_bytes - free_bytes at the last fold
  SamplerState sampler;  // its bytes_until_sample as of the countdown's arming
  int32_t guard;         // > 0: inside the engine or an engine thread; calls pass through
  uint8_t fast;          // 1: the fast path may run; kFastCapture: the capture path (see above)
  uint8_t registered;    // kUnregistered, kRegistered, kRetired
  uint8_t registering;
  uint8_t capturing;     // 1 while recording a capture event (capture.h); read by the writer
  uint8_t unwinding;     // 1 while inside libunwind (sample.cc); read by the fork handler
  uint8_t in_next;       // 1 while asking the next allocator something (next_usable_size)
};
static_assert(sizeof(ThreadState) <= 88, "ThreadState must stay small: it is in every thread's TLS");

inline constexpr uint8_t kUnregistered = 0, kRegistered = 1, kRetired = 2;
inline constexpr uint8_t kFastCapture = 2;  // a value of `fast`

// A field of the thread's state loaded on its own. GCC merges tests of neighbouring fields into
// one wide load, which the narrower stores just made to some of them (the guard, the fast byte)
// cannot be forwarded to: the load waits for them to reach the cache, ~15 cycles, on every slow
// path (a capture takes one on every call).
template <typename T>
[[gnu::always_inline]] inline T field(const T& f) {
  return __atomic_load_n(&f, __ATOMIC_RELAXED);
}

inline constexpr int32_t kPeakFlushBytes = 64 * 1024;

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

// Counting filter over sampled blocks' addresses: zero means "certainly not sampled".
inline constexpr int kFilterBits = 16;
extern std::atomic<uint8_t> g_filter[size_t{1} << kFilterBits];
// Knuth's multiplicative hash of the address's low 32 bits, two instructions: blocks are 16-byte
// aligned, so the product's top bits mix address bits 4 to 31 (blocks 4 GiB apart share a slot).
[[gnu::always_inline]] inline size_t filter_index(const void* p) {
  return static_cast<uint32_t>(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) * 0x9E3779B1u) >>
         (32 - kFilterBits);
}

// Out of line (threads.cc / sample.cc).
struct CallerFrame;  // unwind.h
void alloc_slow(ThreadState& t, void* p, const CallerFrame* caller = nullptr);
void free_slow(ThreadState& t, void* p);
// size: counted bytes; caller: the program's frame the allocation returns to (null: not known).
void sample_slow(ThreadState& t, void* p, size_t size, const CallerFrame* caller);
// The countdown ran out on an allocation at `p` of `size` counted bytes (already counted): folds
// the peak and samples as due, then arms the countdown again.
void countdown_expired(ThreadState& t, void* p, size_t size, const CallerFrame* caller);
void countdown_ran_out(ThreadState& t, void* p, uint64_t size, const CallerFrame* caller);  // threads.cc
bool free_tracked(ThreadState& t, void* p);

// The owner thread is the only writer of its counters; readers load them whole (relaxed). One
// add to memory: an aligned 8-byte store is never seen torn, and no lock prefix is needed.
[[gnu::always_inline]] inline void add_relaxed(uint64_t& field, uint64_t v) {
  __asm__("addq %1, %0" : "+m"(field) : "er"(v));
}

inline constexpr uint64_t kCountedSlack = sizeof(size_t);
[[gnu::always_inline]] inline uint64_t counted(size_t usable) { return usable + kCountedSlack; }
// Usable bytes from a counter of counted bytes and its count of blocks. Read by another thread
// while the owner counts, a count may be ahead of its bytes (read between the owner's two
// updates): the result is then clamped at zero, never wrapped.
[[gnu::always_inline]] inline uint64_t usable_of(uint64_t counted_bytes, uint64_t blocks) {
  return counted_bytes > kCountedSlack * blocks ? counted_bytes - kCountedSlack * blocks : 0;
}

// Counts an allocation of `size` counted bytes in the thread's own counters (registered
// threads); tally_alloc takes the usable size.
[[gnu::always_inline]] inline void tally_alloc_counted(ThreadState& t, uint64_t size) {
  add_relaxed(t.allocs, 1);
  add_relaxed(t.alloc_bytes, size);
}
[[gnu::always_inline]] inline void tally_alloc(ThreadState& t, size_t usable) { tally_alloc_counted(t, counted(usable)); }

[[gnu::always_inline]] inline void tally_free_counted(ThreadState& t, uint64_t size) {
  add_relaxed(t.frees, 1);
  add_relaxed(t.free_bytes, size);
}
[[gnu::always_inline]] inline void tally_free(ThreadState& t, size_t usable) { tally_free_counted(t, counted(usable)); }

// One byte load, compared in memory (an atomic load would be loaded, then tested: one
// instruction more on every free).
[[gnu::always_inline]] inline bool filter_hit(const void* p) {
  bool hit;
  __asm__("cmpb $0, %1" : "=@ccne"(hit) : "m"(g_filter[filter_index(p)]));
  return hit;
}

// After the next allocator returned `p` (non-null): counts it and returns `p`. Every way off the
// fast path is a call that returns `p` too, in tail position, so the hook keeps nothing in
// callee-saved registers around it (threads.cc, sample.cc).
void* alloc_slow_ret(ThreadState& t, void* p);
void* alloc_countdown_ret(ThreadState& t, void* p, size_t size);  // size: counted bytes
// The fast half: the hook tested `fast` before it called the next allocator. A capture that
// starts during that call misses this one allocation (its free is then one of a block the
// capture never saw allocated, as for every block older than the capture).
[[gnu::always_inline]] inline void* on_alloc_fast(void* p) {
  ThreadState& t = t_state;
  const size_t header = real::glibc_chunk_header(p);
  if (header & real::kChunkMmapped) [[unlikely]] return alloc_slow_ret(t, p);
  const size_t size = real::glibc_heap_chunk(header);  // counted bytes
  tally_alloc_counted(t, size);
  if ((t.countdown.left -= static_cast<int64_t>(size)) < 0) [[unlikely]] return alloc_countdown_ret(t, p, size);
  return p;
}
[[gnu::always_inline]] inline void* on_alloc(void* p) {
  if (t_state.fast != 1) [[unlikely]] return alloc_slow_ret(t_state, p);
  return on_alloc_fast(p);
}

// free(p): counts it and hands it to the next allocator, unless it is the engine's own (a
// private or a bootstrap block). The same shape: the ways off the fast path finish the whole
// call themselves, in tail position. A null `p` needs no test of its own: the filter's slot of
// address 0 is raised for good before any thread's fast byte is (set_fast), so null takes a way
// off the fast path, and both return at once for it.
void free_tracked_then_next(ThreadState& t, void* p);
void free_slow_then_next(ThreadState& t, void* p);
[[gnu::always_inline]] inline void free_to_next(void* p) {
  ThreadState& t = t_state;
  if (filter_hit(p)) [[unlikely]] return free_tracked_then_next(t, p);
  if (t.fast != 1) [[unlikely]] return free_slow_then_next(t, p);
  const size_t header = real::glibc_chunk_header(p);
  if (header & real::kChunkMmapped) [[unlikely]] return free_slow_then_next(t, p);
  tally_free_counted(t, real::glibc_heap_chunk(header));
  real::fn.free(p);
}

// Before `p` (non-null) is handed back. Returns true when `p` must not reach the next allocator:
// a block of the engine's private heap (now freed there) or of the bootstrap arena (real.h),
// whose addresses the sampled-block filter holds for good, so the common free tests neither.
[[gnu::always_inline]] inline bool on_free(void* p) {
  ThreadState& t = t_state;
  if (filter_hit(p)) [[unlikely]] return free_tracked(t, p);
  if (t.fast == 1) [[likely]] {
    const size_t header = real::glibc_chunk_header(p);
    if (!(header & real::kChunkMmapped)) [[likely]] {
      tally_free_counted(t, real::glibc_heap_chunk(header));
      return false;
    }
  }
  free_slow(t, p);
  return false;
}

// Usable size of a live block of the next allocator. For glibc: the chunk header. Otherwise the
// allocator's own malloc_usable_size, which may allocate (tcmalloc's builds its MallocExtension
// with operator new, which is ours): with `in_next` raised, calls nested in it are forwarded
// and not counted, so they never ask for a usable size again. Threads of such allocators never
// take the fast path, so `fast` is already 0.
[[gnu::always_inline]] inline size_t next_usable_size(ThreadState& t, void* p) {
  if (real::g_glibc_chunks) [[likely]] return real::glibc_usable_size(p);
  const uint8_t was = t.in_next;
  t.in_next = 1;
  const size_t n = real::fn.malloc_usable_size(p);
  t.in_next = was;
  return n;
}

// Exact process-wide figures, summed over live threads and retired ones.
struct Totals {
  uint64_t allocs, frees, alloc_bytes, free_bytes;
  uint64_t peak_live_bytes;
  uint32_t threads;
};
Totals read_totals();

// Keeps errno as the program left it across a scope that may make system calls.
struct KeepErrno {
  int saved = errno;
  ~KeepErrno() { errno = saved; }
};

// Holds the guard for a scope: allocations inside are counted (their frees may happen outside,
// e.g. libunwind's per-thread cache, freed when the thread exits) but never sampled, so nothing
// the engine calls can recurse into it.
void guard_enter();
void guard_leave();
struct GuardScope {
  GuardScope() { guard_enter(); }
  ~GuardScope() { guard_leave(); }
  GuardScope(const GuardScope&) = delete;
  GuardScope& operator=(const GuardScope&) = delete;
};

// Realloc failed and kept a block whose free was already counted: count it live again.
void undo_free(size_t usable);

// Asymmetric Dekker handshakes (a capture's end, fork quiescence): a thread raises a flag in its
// ThreadState, then loads a global; the other side stores the global, then reads every thread's
// flag. Where membarrier(2) works (g_light_barrier) the frequent side orders its store before
// its load with a compiler barrier only and the rare side calls barrier_heavy(), which makes
// every running thread of the process execute a full fence; a full fence on every event would
// cost more than the event (it waits for the thread's pending stores). Otherwise both sides
// use sequentially consistent operations.
extern bool g_light_barrier;
void barrier_register();  // start-up and a forked child; sets g_light_barrier
void barrier_heavy();
// The frequent side: raises `flag`, then loads `global`.
[[gnu::always_inline]] inline uint32_t raise_then_load(uint8_t& flag, const std::atomic<uint32_t>& global) {
  if (g_light_barrier) {
    __atomic_store_n(&flag, 1, __ATOMIC_RELAXED);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return global.load(std::memory_order_relaxed);
  }
  __atomic_store_n(&flag, 1, __ATOMIC_SEQ_CST);
  return global.load(std::memory_order_seq_cst);
}
// The rare side, after its store: barrier_heavy(), then waits, bounded, until no registered
// thread has `flag` raised. False when one still has it after `max_ms`. Takes the registry lock.
bool threads_wait_clear(uint8_t ThreadState::*flag, int max_ms);

// Captures (capture.h). A capture's start clears every registered thread's `fast` byte (each
// thread sets it again itself, from its slow path, once no capture wants it). Takes the
// registry lock.
void threads_capture_started();
// Recomputes this thread's `fast` byte (a scope capture began or ended on it).
void refresh_fast();

// Fork support (threads.cc): prepare takes the registry lock, parent releases it, child folds
// every other thread's counters into the retired totals (those threads do not exist there).
void threads_atfork_prepare();
void threads_atfork_parent();
void threads_atfork_child();

}  // namespace rsr::hot

#pragma GCC visibility pop
