// Stack capture for sampled allocations. May run inside malloc.
//
// libunwind is loaded privately (dlopen RTLD_LOCAL) by the start-up code: linked normally, its
// exported _Unwind_* and backtrace symbols would replace the process's own. Until it is loaded,
// samples carry no frames.
#pragma once

#include <atomic>
#include <cstdint>

namespace rsr::hot {

struct StackCapture {
  int (*backtrace)(void** buffer, int size) = nullptr;  // libunwind's unw_backtrace
  uintptr_t self_lo = 0, self_hi = 0;  // address range of librsrmem.so, trimmed from stacks
  int depth = 64;
};
extern StackCapture g_stack;

// Depth of every captured stack (frames kept), as in the `metrics` reply: counts per bucket
// (depth <= bound, above the previous bound), the last one above the top bound.
inline constexpr int kDepthBounds[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128};
inline constexpr int kDepthBuckets = sizeof kDepthBounds / sizeof kDepthBounds[0] + 1;
struct DepthHistogram {
  std::atomic<uint64_t> counts[kDepthBuckets];
  std::atomic<uint64_t> sum, count;
};
extern DepthHistogram g_stack_depths;

// Fork support: no thread may be inside libunwind when the process forks (see sample.cc).
void stack_atfork_prepare();
void stack_atfork_parent();
void stack_atfork_child();

}  // namespace rsr::hot
