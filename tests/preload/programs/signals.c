/* A signal handler that allocates and frees while the interrupted thread churns allocations.
 * Not async-signal-safe in theory; the preload must still neither deadlock nor crash.
 *
 * To keep glibc itself out of trouble, the handler uses a size class the main thread never
 * touches and that was primed in the thread's tcache, so glibc serves it without its arena lock.
 * Whatever the preload adds around the call (guards, sampling, stack capture, table updates)
 * runs in the handler while the interrupted thread may be anywhere inside the preload. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kHandlerSize = 900, kTarget = 5000 };
static atomic_int g_handled;
static atomic_int g_stop;
static pthread_t g_main;

static void handler(int sig) {
  (void)sig;
  char* p = malloc(kHandlerSize);
  if (p) {
    p[0] = 1;
    p[kHandlerSize - 1] = 2;
  }
  free(p);
  atomic_fetch_add(&g_handled, 1);
}

static void* sender(void* arg) {
  (void)arg;
  const struct timespec gap = {0, 20000};
  while (!atomic_load(&g_stop)) {
    pthread_kill(g_main, SIGUSR1);
    nanosleep(&gap, NULL);
  }
  return NULL;
}

int main(void) {
  g_main = pthread_self();
  free(malloc(kHandlerSize)); /* prime the tcache bin the handler uses */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);

  pthread_t t;
  pthread_create(&t, NULL, sender, NULL);
  void* slots[128] = {0};
  unsigned x = 12345;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long ops = 0;
  for (;;) {
    for (int i = 0; i < 1000; ++i, ++ops) {
      x = x * 1103515245u + 12345u;
      const unsigned s = (x >> 9) % 128;
      /* sizes 16..400: never the handler's class */
      if (slots[s] && (x & 3) == 0) {
        slots[s] = realloc(slots[s], 16 + (x >> 16) % 385);
      } else {
        free(slots[s]);
        slots[s] = (x & 4) ? malloc(16 + (x >> 16) % 385) : calloc(1, 16 + (x >> 16) % 385);
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    const double elapsed = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
    if (atomic_load(&g_handled) >= kTarget || elapsed > 1.5) break;
  }
  atomic_store(&g_stop, 1);
  pthread_join(t, NULL);
  for (int i = 0; i < 128; ++i) free(slots[i]);
  const int handled = atomic_load(&g_handled);
  printf("signals handled during churn: %s\n", handled > 100 ? "many" : "too few");
  if (getenv("SIGNALS_VERBOSE")) fprintf(stderr, "handled %d signals, %ld operations\n", handled, ops);
  return handled > 100 ? 0 : 1;
}
