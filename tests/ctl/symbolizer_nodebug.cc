// Built with -g0: the symbolizer must fall back to the ELF symbol table.
#include "symbolizer_fixture.h"

__attribute__((noinline)) static void* nodebug_return_address() {
  void* ra = __builtin_return_address(0);
  asm volatile("" ::: "memory");
  return ra;
}

extern "C" void* rsrtest_nodebug_function(volatile int* sink) {
  void* ra = nodebug_return_address();
  *sink = *sink + 1;
  return ra;
}
