// Sampled allocations and frees: stack capture, site interning, block tracking.
// May run inside malloc; runs with the thread's guard held, so anything it calls (libunwind)
// that allocates is counted but never sampled.
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>


#include "capture.h"
#include "engine.h"
#include "fd_watch.h"
#include "launch.h"
#include "private.h"
#include "stack.h"
#include "tables.h"
#include "unwind.h"

namespace rsr::hot {

constinit StackCapture g_stack;
constinit UnwinderPipe g_unwinder_pipe;
constinit std::atomic<uint32_t> g_unwinder_state{kUnwinderIdle};

namespace {

uint32_t* futex_word() { return reinterpret_cast<uint32_t*>(&g_unwinder_state); }

// Waits until the state is `state` (`equal`) or is not (`!equal`), or until `deadline_ns`.
// Returns the state it then has.
uint32_t wait_state(uint32_t state, bool equal, int64_t deadline_ns) {
  for (;;) {
    const uint32_t now_state = g_unwinder_state.load(std::memory_order_acquire);
    if ((now_state == state) == equal) return now_state;
    const int64_t left = deadline_ns - monotonic_ns();
    if (left <= 0) return now_state;
    const timespec ts{static_cast<time_t>(left / 1000000000), static_cast<long>(left % 1000000000)};
    syscall(SYS_futex, futex_word(), FUTEX_WAIT_PRIVATE, now_state, &ts, nullptr, 0);
  }
}

// When the first sample asked for libunwind: every sample's wait ends kUnwinderWaitMs after it,
// so a control thread held up (by the loader's lock, which the sampling thread may hold) costs
// the process that much once, not per sample.
std::atomic<int64_t> g_unwinder_wanted_ns{0};

// Set once the start-up is over: the control thread then loads libunwind at its next turn (within
// a second), and no thread waits for it.
std::atomic<bool> g_unwinder_no_waits{false};

// A stack's wait for libunwind (stack.h). True when it is loaded.
bool await_unwinder() {
  // No control thread yet to load it: start one, or take this stack without frames (no wait).
  if (launch_pending() && !launch_for_stack()) {
    uint32_t idle = kUnwinderIdle;  // the thread loads it when it starts
    g_unwinder_state.compare_exchange_strong(idle, kUnwinderWanted, std::memory_order_acq_rel);
    return false;
  }
  uint32_t s = g_unwinder_state.load(std::memory_order_acquire);
  if (s == kUnwinderIdle) {
    const int64_t now = monotonic_ns();
    int64_t none = 0;
    g_unwinder_wanted_ns.compare_exchange_strong(none, now, std::memory_order_relaxed);
    if (g_unwinder_state.compare_exchange_strong(s, kUnwinderWanted, std::memory_order_acq_rel))
      syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
    s = g_unwinder_state.load(std::memory_order_acquire);
  }
  if (s == kUnwinderWanted && !g_unwinder_no_waits.load(std::memory_order_relaxed)) {
    const int64_t since = g_unwinder_wanted_ns.load(std::memory_order_relaxed);
    s = wait_state(kUnwinderWanted, false, since + int64_t{kUnwinderWaitMs} * 1000000);  // until settled
  }
  return s == kUnwinderSettled && g_stack.backtrace != nullptr;
}

}  // namespace

void wait_unwinder_wanted(int64_t ms) {
  if (ms > 0) wait_state(kUnwinderWanted, true, monotonic_ns() + ms * 1000000);
}

void unwinder_no_more_waits() { g_unwinder_no_waits.store(true, std::memory_order_relaxed); }

void unwinder_settled() {
  g_unwinder_state.store(kUnwinderSettled, std::memory_order_release);
  syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}

bool unwinder_pipe_intact() {
  const UnwinderPipe& u = g_unwinder_pipe;
  volatile int* array = u.array.load(std::memory_order_acquire);
  if (!array) return true;
  return !fd_lost(u.read_slot.load(std::memory_order_relaxed)) && !fd_lost(u.write_slot.load(std::memory_order_relaxed)) &&
         array[0] == u.read_fd.load(std::memory_order_relaxed) && array[1] == u.write_fd.load(std::memory_order_relaxed);
}

namespace {

// Fork quiescence: libunwind takes internal mutexes while it steps, and a child forked while
// another thread holds one would hang at its first unwind. The prepare handler raises
// g_fork_pending and waits (bounded) until no thread is inside libunwind; new captures meanwhile
// record no frames. A registered thread says it is unwinding in its own ThreadState (the
// asymmetric handshake of engine.h: no shared cache line, no full fence per stack); a thread not
// yet registered counts itself in g_unwinding, with sequentially consistent operations.
std::atomic<int> g_unwinding{0};
std::atomic<uint32_t> g_fork_pending{0};

// A stack by stepping through its frames (unw_init_local, unw_step). unw_backtrace's fast path
// keeps a trace cache per thread that libunwind maps at the thread's first stack and unmaps at its
// exit: an mmap, page faults, an munmap and a TLB shootdown across CPUs for every thread, which
// short-lived threads pay in full for a sample or two. Stepping keeps no per-thread state beyond
// libunwind's TLS register-state cache; it costs more per frame, which only matters where every
// allocation is unwound (detailed mode, captures: those use unw_backtrace).
int step_backtrace(void** out, int want) {
  const StackCapture& sc = g_stack;
  unw_context_t context;
  unw_cursor_t cursor;
  if (sc.getcontext(&context) != 0 || sc.init_local(&cursor, &context) != 0) return 0;
  int n = 0;
  do {
    uint64_t ip = 0;
    if (sc.get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    out[n++] = reinterpret_cast<void*>(ip);
  } while (n < want && sc.step(&cursor) > 0);
  return n;
}

int unwind(void** raw, int want, bool every_allocation) {
  ThreadState& t = t_state;
  const bool own = t.registered == kRegistered;
  uint32_t pending;
  if (own) {
    pending = raise_then_load(t.unwinding, g_fork_pending);
  } else {
    g_unwinding.fetch_add(1);
    pending = g_fork_pending.load();
  }
  int n = 0;
  {
    const KeepErrno keep;
    if (!pending && unwinder_pipe_intact())
      n = every_allocation || !g_stack.step ? g_stack.backtrace(raw, want) : step_backtrace(raw, want);
  }
  if (own) __atomic_store_n(&t.unwinding, 0, __ATOMIC_RELEASE);
  else g_unwinding.fetch_sub(1);
  return n;
}

// libunwind's stack, for those the library's walker gives up on.
[[gnu::noinline]] int capture_with_libunwind(uintptr_t* out, int depth, bool every_allocation) {
  if (g_unwinder_state.load(std::memory_order_acquire) != kUnwinderSettled && !await_unwinder()) return 0;
  const StackCapture& sc = g_stack;
  if (!sc.backtrace) return 0;
  void* raw[kMaxDepth + 16];
  int want = depth + 16;
  if (want > static_cast<int>(sizeof raw / sizeof raw[0])) want = sizeof raw / sizeof raw[0];
  const int n = unwind(raw, want, every_allocation);
  int first = 0;
  while (first < n) {
    const auto ip = reinterpret_cast<uintptr_t>(raw[first]);
    if (ip < sc.self_lo || ip >= sc.self_hi) break;
    ++first;
  }
  int m = 0;
  for (int i = first; i < n && m < depth; ++i) out[m++] = reinterpret_cast<uintptr_t>(raw[i]);
  return m;
}

// The library's own frames (the hook, this file) are at the top of every stack; they are
// dropped so the first frame is the caller of the allocation function. The library's walker
// (unwind.h) takes every stack it can follow, libunwind the others once it is loaded.
// `every_allocation`: detailed mode or a capture, where unw_backtrace's per-thread cache pays
// off. Kept shallow: a new thread's stack pages are mapped afresh (glibc gives cached stacks
// back to the kernel), and a sample should not fault in more of them than the program does.
// `caller`: the program's frame the hook passed on (the walk starts there unless it is the
// library's own); `memo`, `reused`: as walk_stack's.
// Whether the walk starts at `caller`: one the hook passed on, in the program's code.
bool walk_from(const CallerFrame* caller) {
  return caller && (caller->pc < g_stack.self_lo || caller->pc >= g_stack.self_hi);
}

int capture(uintptr_t* out, int depth, bool every_allocation, const CallerFrame* caller = nullptr,
            StackMemo* memo = nullptr, bool* reused = nullptr) {
  const StackCapture& sc = g_stack;
  const int n = walk_from(caller) ? walk_stack_from(*caller, out, depth, sc.self_lo, sc.self_hi, memo, reused)
                                  : walk_stack(out, depth, sc.self_lo, sc.self_hi, memo, reused);
  return n >= 0 ? n : capture_with_libunwind(out, depth, every_allocation);
}

// The calling thread's stack memos (unwind.h), made at its first stack walked for a capture or
// in detailed mode; null when the private heap cannot give them. A few: the one whose first
// frame is the caller the hook passed on (same return address and stack pointer), else the next
// in turn, so a loop that allocates at a few places keeps each place's stack.
constexpr int kMemoWays = 4;

StackMemo* memo_way(unsigned i) {
  return reinterpret_cast<StackMemo*>(reinterpret_cast<char*>(t_capture.memo) + stack_memo_bytes(g_stack.depth) * i);
}

// The thread's memo whose first frame is `caller`, if any.
StackMemo* find_memo(const CallerFrame& caller) {
  if (!t_capture.memo) return nullptr;
  for (unsigned i = 0; i < kMemoWays; ++i) {
    StackMemo* m = memo_way(i);
    if (m->pc == caller.pc && m->sp == caller.sp) return m;
  }
  return nullptr;
}

StackMemo* thread_memo(const CallerFrame* caller) {
  CaptureTls& tls = t_capture;
  const int depth = g_stack.depth;
  const size_t bytes = stack_memo_bytes(depth);
  if (!tls.memo && g_private_ready.load(std::memory_order_acquire)) {
    if (auto* block = static_cast<char*>(private_malloc(bytes * kMemoWays))) {
      for (int i = 0; i < kMemoWays; ++i) stack_memo_init(block + bytes * static_cast<size_t>(i), depth);
      tls.memo = reinterpret_cast<StackMemo*>(block);
    }
  }
  if (!tls.memo) return nullptr;
  if (!caller) return memo_way(0);
  if (StackMemo* m = find_memo(*caller)) return m;
  tls.memo_next = static_cast<uint8_t>((tls.memo_next + 1) % kMemoWays);
  return memo_way(tls.memo_next);
}

// The usual case where every allocation is walked: the program allocates where it allocated
// before, from the same stack, whose site the memo kept. Checked without walking.
bool memo_site(const CallerFrame* caller, uint32_t* site) {
  if (!walk_from(caller)) return false;
  const StackMemo* m = find_memo(*caller);
  if (!m || m->site == kMemoNoSite || !memo_holds_from(*m, g_stack.depth, *caller)) return false;
  *site = m->site;
  return true;
}

// The site of the allocation's stack, walked afresh (or found by the walk in the memo, whose
// site was not yet known), with the guard held. `every_allocation` (detailed mode, captures):
// the thread's memo keeps the stack and its site for the next time.
uint32_t walked_site(const CallerFrame* caller, bool every_allocation) {
  const int depth = g_stack.depth;
  auto* frames = static_cast<uintptr_t*>(__builtin_alloca(sizeof(uintptr_t) * static_cast<size_t>(depth)));
  StackMemo* memo = every_allocation ? thread_memo(caller) : nullptr;
  bool reused = false;
  const int n = capture(frames, depth, every_allocation, caller, memo, &reused);
  if (reused && memo->site != kMemoNoSite) return memo->site;
  const uint32_t site = site_intern(frames, n);
  if (memo) memo->site = site;  // the memo holds these frames, or none (unwind.h)
  return site;
}

[[gnu::noinline]] uint32_t walked_stack_id(const CallerFrame* caller) {
  const KeepErrno keep;  // libunwind and the private heap may make system calls
  guard_enter();
  const uint32_t site = walked_site(caller, true);
  guard_leave();
  return site == kNoSite ? 0 : site + 1;
}

}  // namespace

DepthHistogram stack_depths() {
  DepthHistogram h{};
  each_site([&](uint32_t i) {
    const Site& s = site_at(i);
    const uint64_t n = s.samples.load(std::memory_order_relaxed);
    if (n == 0 || s.ready.load(std::memory_order_acquire) == 0 || s.depth == 0) return;
    int b = 0;
    while (b < kDepthBuckets - 1 && static_cast<int>(s.depth) > kDepthBounds[b]) ++b;
    h.counts[b] += n;
    h.sum += n * s.depth;
    h.count += n;
  });
  return h;
}

[[gnu::noinline]] void sample_slow(ThreadState& t, void* p, size_t size, const CallerFrame* caller) {
  const uint64_t interval = g_engine.interval;
  if (!sampler_redraw(t.sampler, interval, size)) return;
  const size_t usable = size - kCountedSlack;
  if (g_engine.mode.load(std::memory_order_acquire) != kActive) return;
  const KeepErrno keep;
  guard_enter();
  // Detailed mode samples every allocation: the stack memo spares most walks, as for captures.
  const bool every_allocation = interval == 0;
  uint32_t site;
  if (!every_allocation || !memo_site(caller, &site)) site = walked_site(caller, every_allocation);
  const SampleWeight w = sample_weight(usable, size, interval);
  Site& s = site_at(site);
  // The site's counters only: totals are summed from the sites when asked (samples_taken,
  // stack_depths), so a sample (every allocation in detailed mode) shares no other line.
  s.samples.fetch_add(1, std::memory_order_relaxed);
  s.alloc_bytes.fetch_add(w.bytes, std::memory_order_relaxed);
  s.alloc_blocks_fp.fetch_add(w.blocks_fp, std::memory_order_relaxed);
  if (block_insert(p, site, w)) {
    s.live_bytes.fetch_add(static_cast<int64_t>(w.bytes), std::memory_order_relaxed);
    s.live_blocks_fp.fetch_add(static_cast<int64_t>(w.blocks_fp), std::memory_order_relaxed);
    s.live_samples.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_tables.dropped_samples.fetch_add(1, std::memory_order_relaxed);
  }
  guard_leave();
}

uint32_t capture_stack_id(const CallerFrame* caller) {
  if (g_engine.mode.load(std::memory_order_acquire) != kActive) return 0;
  uint32_t site;
  if (memo_site(caller, &site)) return site + 1;
  return walked_stack_id(caller);
}

void release_thread_memo() {
  CaptureTls& tls = t_capture;
  if (StackMemo* memo = tls.memo) {
    tls.memo = nullptr;
    if (block_remove(memo) == Tracked::kPrivate) private_release(memo);
  }
}

[[gnu::noinline]] bool free_tracked(ThreadState& t, void* p) {
  if (real::is_bootstrap(p)) return true;  // handed out before dlsym returned: never freed
  const Tracked what = block_remove(p);
  if (what == Tracked::kPrivate) {
    private_release(p);
    return true;
  }
  if (t.fast == 1) tally_free(t, real::glibc_usable_size(p));
  else free_slow(t, p);
  return false;
}

void free_tracked_then_next(ThreadState& t, void* p) {
  if (p != nullptr && !free_tracked(t, p)) real::fn.free(p);
}

void stack_atfork_prepare() {
  g_fork_pending.store(1);
  // Unwinding is bounded; the bound only matters when fork() is called from a signal handler
  // that interrupted this very thread inside libunwind.
  threads_wait_clear(&ThreadState::unwinding, 1000);
  for (int spins = 0; g_unwinding.load() != 0 && spins < 100000; ++spins) sched_yield();
}

void stack_atfork_parent() { g_fork_pending.store(0); }

void stack_atfork_child() {
  g_unwinding.store(0);
  g_fork_pending.store(0);
  t_state.unwinding = 0;
}

}  // namespace rsr::hot
