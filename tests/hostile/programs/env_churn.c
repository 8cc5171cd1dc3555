// Treats its environment the way bash does: bash builds its own arrays of exported variables,
// installs one in `environ` at times, and later frees it (strings and array) while `environ`
// still points to it; it never reads `environ` itself again, so it never notices. Anything else
// that reads the environment then (a library's constructor calling getenv()) reads freed memory.
// This program does that from its first instant, freed memory poisoned, while it allocates (so
// samples are taken), for argv[1] milliseconds (default 300), and exits 0.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char** environ;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char** copy_of(char** env) {
  size_t n = 0;
  while (env[n]) ++n;
  char** out = malloc((n + 1) * sizeof *out);
  for (size_t i = 0; i < n; ++i) out[i] = strdup(env[i]);
  out[n] = NULL;
  return out;
}

static void poison_and_free(char** env) {
  size_t n = 0;
  for (; env[n]; ++n) {
    memset(env[n], 'x', strlen(env[n]));
    free(env[n]);
  }
  memset(env, 0x5a, n * sizeof *env);  // wild pointers for whoever walks it
  free(env);
}

int main(int argc, char** argv) {
  const long long until = now_ms() + (argc > 1 ? atoll(argv[1]) : 300);
  char** exported = copy_of(environ);  // the program's own copy, valid throughout
  void* keep[64] = {0};
  unsigned long round = 0;
  while (now_ms() < until) {
    char** installed = copy_of(exported);
    environ = installed;
    poison_and_free(installed);  // `environ` dangles from here on, as in bash
    for (int i = 0; i < 16; ++i) {
      const unsigned long k = round * 16 + (unsigned long)i;
      free(keep[k % 64]);
      keep[k % 64] = malloc(4096 + (k % 7) * 1000);
    }
    ++round;
  }
  environ = exported;
  printf("rounds %lu\n", round);
  return 0;
}
