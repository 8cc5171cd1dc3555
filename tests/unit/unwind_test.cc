// The library's stack walker (preload/hot/unwind.cc) against libunwind, on the same stacks:
// frames without a frame pointer, frames addressed from rbp (alloca), recursion, calls back
// from libc (qsort) and libstdc++ (std::sort, std::function), other threads, C++ exceptions in
// flight, and a signal handler (which the walker leaves to libunwind).
#include <alloca.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <libunwind.h>

#include "nocfi_frames.h"
#include "unwind.h"

namespace {

struct Both {
  std::vector<uintptr_t> walked, reference;
  int walk_result = 0;
};

// Both stacks from the same frame. Each list starts with the return address into probe() from
// its own call, so they are compared from probe's caller on.
[[gnu::noinline]] void probe(Both* both) {
  uintptr_t out[256];
  both->walk_result = rsr::hot::walk_stack(out, 256);
  if (both->walk_result > 0) both->walked.assign(out + 1, out + both->walk_result);
  void* ref[256];
  const int n = unw_backtrace(ref, 256);
  for (int i = 1; i < n; ++i) both->reference.push_back(reinterpret_cast<uintptr_t>(ref[i]));
  __asm__ volatile("" ::: "memory");
}

void expect_same(const Both& b, const char* where) {
  ASSERT_GT(b.walk_result, 2) << where;
  ASSERT_FALSE(b.reference.empty()) << where;
  EXPECT_EQ(b.walked, b.reference) << where << ": walked " << b.walked.size() << " frames, libunwind "
                                   << b.reference.size();
}

[[gnu::noinline]] int recurse(Both* b, int depth) {
  if (depth == 0) {
    probe(b);
    return 1;
  }
  const int r = recurse(b, depth - 1) + 1;
  __asm__ volatile("" ::: "memory");
  return r;
}

// A variable-sized frame: the compiler addresses its CFA from rbp.
[[gnu::noinline]] int with_alloca(Both* b, size_t n) {
  auto* area = static_cast<volatile char*>(alloca(n));
  area[0] = 1;
  area[n - 1] = 2;
  const int r = recurse(b, 3);
  return r + area[0] + area[n - 1];
}

Both* g_sorted = nullptr;
int compare_ints(const void* a, const void* b) {
  if (g_sorted) {
    probe(g_sorted);
    g_sorted = nullptr;
  }
  return *static_cast<const int*>(a) - *static_cast<const int*>(b);
}

TEST(Walker, MatchesLibunwindThroughPlainFrames) {
  Both b;
  recurse(&b, 20);
  expect_same(b, "recursion");
}

TEST(Walker, MatchesLibunwindThroughFramesAddressedFromRbp) {
  Both b;
  with_alloca(&b, 4000);
  expect_same(b, "alloca");
}

TEST(Walker, MatchesLibunwindThroughLibcCallbacks) {
  Both b;
  std::vector<int> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int>((i * 37) % 64);
  g_sorted = &b;
  qsort(v.data(), v.size(), sizeof(int), compare_ints);
  expect_same(b, "qsort");
}

TEST(Walker, MatchesLibunwindThroughLibstdcxxFrames) {
  Both b;
  bool done = false;
  std::vector<std::string> v;
  for (int i = 0; i < 40; ++i) v.push_back(std::to_string((i * 7) % 40));
  std::sort(v.begin(), v.end(), [&](const std::string& x, const std::string& y) {
    if (!done) {
      done = true;
      std::function<void()> f = [&] { probe(&b); };
      f();
    }
    return x < y;
  });
  expect_same(b, "std::sort and std::function");
}

TEST(Walker, MatchesLibunwindOnOtherThreads) {
  std::vector<Both> results(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&results, i] { recurse(&results[i], static_cast<int>(i)); });
  for (auto& t : threads) t.join();
  for (const Both& b : results) expect_same(b, "thread");
}

TEST(Walker, MatchesLibunwindWhileAnExceptionUnwinds) {
  struct Probe {
    Both* b;
    ~Probe() { probe(b); }
  };
  Both b;
  try {
    Probe p{&b};
    throw std::runtime_error("unwinding");
  } catch (const std::exception&) {
  }
  expect_same(b, "destructor during unwinding");
}

TEST(Walker, CrossesFramesWithoutUnwindInformationByTheirFramePointer) {
  Both b;
  nocfi_outer([](void* arg) { recurse(static_cast<Both*>(arg), 2); }, &b);
  expect_same(b, "frames built without unwind tables");
  EXPECT_GT(b.walked.size(), 8u) << "the walk went on past them to main";
}

std::atomic<Both*> g_in_handler{nullptr};
void on_signal(int) {
  Both* b = g_in_handler.load();
  uintptr_t out[64];
  b->walk_result = rsr::hot::walk_stack(out, 64);
}

TEST(Walker, LeavesSignalFramesToLibunwind) {
  Both b;
  b.walk_result = 12345;
  g_in_handler = &b;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, nullptr);
  raise(SIGUSR1);
  // The handler's frame is walked; the kernel's signal frame is not followed.
  EXPECT_EQ(b.walk_result, -1);
  EXPECT_GE(rsr::hot::walk_counts().gave_up, 1u);
}

TEST(Walker, CachesOneRulePerInstruction) {
  uint64_t rules[2];
  for (uint64_t& r : rules) {
    Both b;
    recurse(&b, 10);
    r = rsr::hot::walk_counts().rules;
  }
  EXPECT_EQ(rules[1], rules[0]) << "the same stack again needs no new rule";
  rsr::hot::walk_forget();
  EXPECT_EQ(rsr::hot::walk_counts().rules, 0u);
  Both after;
  recurse(&after, 10);
  expect_same(after, "after forgetting");
  EXPECT_GT(rsr::hot::walk_counts().rules, 0u);
}

}  // namespace

namespace {

// A memo's stack is reused only while it is the same stack: the same caller chain again reuses
// it, a different caller anywhere in the chain (here two levels up, same depth) does not.
struct MemoWalk {
  std::vector<uintptr_t> frames;
  bool reused = false;
};

[[gnu::noinline]] void memo_probe(rsr::hot::StackMemo* memo, MemoWalk* w) {
  uintptr_t out[64];
  const int n = rsr::hot::walk_stack(out, 64, 0, 0, memo, &w->reused);
  if (n > 0) w->frames.assign(out, out + n);
  __asm__ volatile("" ::: "memory");
}
[[gnu::noinline]] void memo_middle(rsr::hot::StackMemo* memo, MemoWalk* w) {
  memo_probe(memo, w);
  __asm__ volatile("" ::: "memory");
}
[[gnu::noinline]] void memo_caller_a(rsr::hot::StackMemo* memo, MemoWalk* w) {
  memo_middle(memo, w);
  __asm__ volatile("" ::: "memory");
}
[[gnu::noinline]] void memo_caller_b(rsr::hot::StackMemo* memo, MemoWalk* w) {
  memo_middle(memo, w);
  __asm__ volatile("" ::: "memory");
}

// Walks from memo_caller_a or _b, `times` times from one call site (a loop the compiler cannot
// unroll, so each walk is the same stack).
[[gnu::noinline]] void walk_times(bool via_b, int times, rsr::hot::StackMemo* memo, MemoWalk* walks) {
  volatile int count = times;
  for (int i = 0; i < count; ++i) {
    if (via_b) memo_caller_b(memo, &walks[i]);
    else memo_caller_a(memo, &walks[i]);
  }
}

TEST(Walker, ReusesAMemoOnlyForTheSameStack) {
  std::vector<char> block(rsr::hot::stack_memo_bytes(64));
  rsr::hot::StackMemo* memo = rsr::hot::stack_memo_init(block.data(), 64);
  MemoWalk plain_a[1], plain_b[1], a[3], b[2], a_again[1];
  walk_times(false, 1, nullptr, plain_a);
  walk_times(true, 1, nullptr, plain_b);
  ASSERT_GT(plain_a[0].frames.size(), 4u);
  ASSERT_NE(plain_a[0].frames, plain_b[0].frames);
  walk_times(false, 3, memo, a);
  walk_times(true, 2, memo, b);
  walk_times(false, 1, memo, a_again);
  EXPECT_FALSE(a[0].reused);
  EXPECT_TRUE(a[1].reused);
  EXPECT_TRUE(a[2].reused);
  EXPECT_FALSE(b[0].reused) << "a different caller two frames up";
  EXPECT_TRUE(b[1].reused);
  EXPECT_FALSE(a_again[0].reused);
  // Reused or not, each walk is the walk without a memo, but for walk_times' return address
  // into this function (frame 4), which differs from call to call.
  auto but_caller = [](const MemoWalk& w) {
    std::vector<uintptr_t> f = w.frames;
    f.erase(f.begin() + 4);
    return f;
  };
  for (const MemoWalk& w : a) EXPECT_EQ(but_caller(w), but_caller(plain_a[0]));
  for (const MemoWalk& w : b) EXPECT_EQ(but_caller(w), but_caller(plain_b[0]));
  EXPECT_EQ(but_caller(a_again[0]), but_caller(plain_a[0]));
  EXPECT_EQ(a[1].frames, a[0].frames);
}

// A walk that keeps no frame (every one skipped) leaves the memo holding none: a site recorded
// beside it afterwards must not be taken for the stack the memo held before.
TEST(Walker, AWalkThatKeepsNoFrameLeavesTheMemoEmpty) {
  std::vector<char> block(rsr::hot::stack_memo_bytes(64));
  rsr::hot::StackMemo* memo = rsr::hot::stack_memo_init(block.data(), 64);
  MemoWalk first[1];
  walk_times(false, 1, memo, first);
  ASSERT_GT(memo->frames_n, 0);
  uintptr_t out[64];
  bool reused = true;
  EXPECT_EQ(rsr::hot::walk_stack(out, 64, 0, UINTPTR_MAX, memo, &reused), 0);
  EXPECT_FALSE(reused);
  EXPECT_EQ(memo->frames_n, 0);
  MemoWalk again[1];
  walk_times(false, 1, memo, again);
  EXPECT_FALSE(again[0].reused);
}

}  // namespace
