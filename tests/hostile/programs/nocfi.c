/* Built without unwind tables: libunwind cannot step through these frames with DWARF and falls
 * back to frame-chain guessing, which validates addresses through its pipe. */
#include <stdlib.h>

#include "nocfi.h"

__attribute__((noinline)) void* nocfi_alloc(size_t n) {
  void* p = malloc(n);
  __asm__ volatile("" ::"r"(p) : "memory");
  return p;
}
