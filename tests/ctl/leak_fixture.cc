// See leak_fixture.h. Built twice: RSR_FIXTURE names this build's variables (o0 or o2) and
// RSR_FIXTURE_FUNCTION its user function. The allocator lives in an anonymous namespace so that
// one library's std::vector instantiations cannot be interposed by the other's.
#include <execinfo.h>

#include <new>

#include "leak_fixture.h"

#define RSR_CAT2(a, b) a##_##b
#define RSR_CAT(a, b) RSR_CAT2(a, b)
#define RSR_FIXTURE_NAME(x) RSR_CAT(RSR_FIXTURE, x)

namespace rsrtest {

int RSR_FIXTURE_NAME(push_line);

namespace {

std::vector<uint64_t> g_recorded;

template <class T>
struct RecordingAllocator {
  using value_type = T;
  RecordingAllocator() = default;
  template <class U>
  RecordingAllocator(const RecordingAllocator<U>&) {}
  // noinline: frame 0 of backtrace() is this function, and frame 1 its caller in std::vector.
  __attribute__((noinline)) T* allocate(std::size_t n) {
    void* frames[64];
    const int got = backtrace(frames, 64);
    g_recorded.clear();
    for (int i = 1; i < got; ++i) g_recorded.push_back(reinterpret_cast<uint64_t>(frames[i]));
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p); }
  friend bool operator==(const RecordingAllocator&, const RecordingAllocator&) { return true; }
};

}  // namespace

// noipa: no clone or inlining of this function; the write through `sink` after the call keeps
// the call from being a tail call.
__attribute__((noipa)) void RSR_FIXTURE_FUNCTION(std::vector<long, RecordingAllocator<long>>& sessions,
                                                 volatile long* sink) {
  RSR_FIXTURE_NAME(push_line) = __LINE__ + 1;  // the next line's
  sessions.push_back(42);
  *sink = static_cast<long>(sessions.size());
}

std::vector<uint64_t> RSR_FIXTURE_NAME(allocation_stack)() {
  std::vector<long, RecordingAllocator<long>> sessions;
  volatile long sink = 0;
  RSR_FIXTURE_FUNCTION(sessions, &sink);
  return g_recorded;
}

}  // namespace rsrtest
