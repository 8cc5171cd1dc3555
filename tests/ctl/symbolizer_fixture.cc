#include "symbolizer_fixture.h"

namespace rsrtest {

int plain_call_line;
int inlined_call_line;
int outer_call_line;

// noinline and an empty asm keep a real call, so the caller's frame holds a return address.
__attribute__((noinline)) void* return_address() {
  void* ra = __builtin_return_address(0);
  asm volatile("" ::: "memory");
  return ra;
}

// The writes through `sink` after each call keep the calls from becoming tail calls (a jump
// would leave no return address inside the caller).
void* plain_function(volatile int* sink) {
  plain_call_line = __LINE__ + 1;  // the next line's
  void* ra = return_address();
  *sink = *sink + 1;
  return ra;
}

inline __attribute__((always_inline)) void* inlined_helper(volatile int* sink) {
  inlined_call_line = __LINE__ + 1;  // the next line's
  void* ra = return_address();
  *sink = *sink + 2;
  return ra;
}

void* outer_function(volatile int* sink) {
  outer_call_line = __LINE__ + 1;  // the next line's
  void* ra = inlined_helper(sink);
  *sink = *sink + 3;
  return ra;
}

}  // namespace rsrtest
