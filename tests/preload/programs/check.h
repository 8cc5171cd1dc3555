/* Shared by the C and C++ test programs: a deterministic transcript of checks.
 * Each check prints "ok <name>" or "FAIL <name>: <detail>"; the program exits 1 if any failed.
 * Nothing printed may depend on addresses or timing, so the transcript under the preload can be
 * compared byte for byte with the transcript without it. */
#ifndef RSR_TEST_CHECK_H
#define RSR_TEST_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static int g_failures;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void check(int ok, const char* name, const char* fmt, ...) {
  if (ok) {
    printf("ok %s\n", name);
    return;
  }
  ++g_failures;
  printf("FAIL %s: ", name);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

static inline int aligned_to(const void* p, size_t a) { return ((uintptr_t)p % a) == 0; }

static inline int finish(void) {
  printf("done failures=%d\n", g_failures);
  fflush(stdout);
  return g_failures ? 1 : 0;
}

#endif
