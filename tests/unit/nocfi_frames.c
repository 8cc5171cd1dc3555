/* Built without unwind tables and with a frame pointer (tests/unit/meson.build): frames the
 * stack walker must cross by their frame pointer, as libunwind's fallback does. */
#include "nocfi_frames.h"

__attribute__((noinline)) void nocfi_inner(void (*f)(void*), void* arg) {
  f(arg);
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void nocfi_outer(void (*f)(void*), void* arg) {
  nocfi_inner(f, arg);
  __asm__ volatile("" ::: "memory");
}
