/* Holds a known set of heap blocks so the test can compare the library's exact live-heap figures
 * with what the program holds. Between the test's queries this program makes no allocation but
 * its own: all I/O is raw read/write on stdin/stdout.
 *
 * Protocol (one line each way):
 *   -> "ready"                  after start-up (payload loaded, helper thread running)
 *   <- "hold"                   churn that nets to zero, then allocate the held set (some of it
 *                               by short-lived threads that have exited by the time it reports)
 *   -> "held <bytes> <blocks>"  bytes = sum of malloc_usable_size over the held blocks
 *   <- "free"                   free every held block (half of them from the other thread)
 *   -> "freed"
 *   <- "exit" (or EOF)          exit 0
 * Usage: live_bytes [payload.so] */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kMaxHeld = 8192 };
enum Owner { kFree, kPayloadArray, kPayloadAligned };
struct Held {
  void* p;
  enum Owner how;
};
static struct Held g_held[kMaxHeld];
static int g_n;

static void* (*payload_make)(size_t);
static void (*payload_release)(void*);
static void* (*payload_make_aligned)(size_t);
static void (*payload_release_aligned)(void*);

static void say(const char* s) {
  size_t n = strlen(s);
  while (n) {
    ssize_t k = write(1, s, n);
    if (k <= 0) _exit(3);
    s += k;
    n -= (size_t)k;
  }
}

static int read_line(int fd, char* buf, size_t cap) {
  size_t n = 0;
  for (;;) {
    char c;
    ssize_t k = read(fd, &c, 1);
    if (k <= 0) return 0;
    if (c == '\n') break;
    if (n + 1 < cap) buf[n++] = c;
  }
  buf[n] = '\0';
  return 1;
}

static void hold(void* p, enum Owner how) {
  if (!p || g_n >= kMaxHeld) {
    say("FAIL hold\n");
    _exit(4);
  }
  g_held[g_n].p = p;
  g_held[g_n].how = how;
  ++g_n;
}

static void release(const struct Held* h) {
  switch (h->how) {
    case kFree: free(h->p); break;
    case kPayloadArray: payload_release(h->p); break;
    case kPayloadAligned: payload_release_aligned(h->p); break;
  }
}

/* Allocation traffic that leaves nothing behind. */
static void churn(int seed) {
  for (int i = 0; i < 3000; ++i) {
    size_t n = (size_t)((i * 7 + seed) % 1000) + 1;
    char* p = malloc(n);
    p = realloc(p, (size_t)((i * 13 + seed) % 3000) + 1);
    if (i % 3 == 0) {
      p = realloc(p, 0); /* glibc frees and returns NULL */
    }
    free(p);
    free(calloc(3, n));
    void* a = NULL;
    if (posix_memalign(&a, 64, n) == 0) free(a);
    free(memalign(128, n));
    free(aligned_alloc(32, 64));
    free(reallocarray(NULL, 5, n));
  }
  free(valloc(1000));
  free(pvalloc(1000));
  char* big = malloc(100);
  big = realloc(big, 200000);     /* into mmap territory */
  big = realloc(big, 4 << 20);    /* mremap */
  big = realloc(big, 50);         /* back to the arena */
  free(big);
  free(strdup("churn"));
  if (payload_make) {
    for (int i = 0; i < 200; ++i) payload_release(payload_make((size_t)(i * 31 + 1)));
    payload_release_aligned(payload_make_aligned(1000));
  }
}

static void allocate_main_set(void) {
  hold(malloc(1), kFree);
  hold(malloc(0), kFree);
  hold(malloc(24), kFree);
  hold(malloc(100), kFree);
  hold(malloc(1000), kFree);
  hold(malloc(4096), kFree);
  hold(malloc(100000), kFree);
  hold(malloc(1 << 20), kFree); /* mmap */
  hold(malloc(3 << 20), kFree);
  hold(calloc(10, 100), kFree);
  hold(calloc(1, 1 << 18), kFree);
  hold(realloc(malloc(100), 5000), kFree);
  hold(realloc(malloc(1 << 20), 2 << 20), kFree);
  hold(realloc(malloc(5000), 10), kFree);
  hold(reallocarray(NULL, 10, 50), kFree);
  hold(aligned_alloc(64, 640), kFree);
  void* p = NULL;
  if (posix_memalign(&p, 4096, 10000) == 0) hold(p, kFree);
  hold(memalign(256, 300), kFree);
  hold(valloc(5000), kFree);
  hold(pvalloc(5000), kFree);
  hold(strdup("a string held by the program"), kFree);
  for (int i = 0; i < 1000; ++i) hold(malloc((size_t)(i % 300)), kFree);
  if (payload_make) {
    for (int i = 0; i < 100; ++i) hold(payload_make((size_t)(i * 97 + 1)), kPayloadArray);
    hold(payload_make(300000), kPayloadArray);
    hold(payload_make_aligned(300), kPayloadAligned);
    hold(payload_make_aligned(70000), kPayloadAligned);
  }
}

/* Short-lived threads: each allocates blocks that outlive it. Their stacks are small and were
 * used once before the first query, so glibc reuses cached stacks (and their TLS blocks) instead
 * of allocating new ones while the test measures. */
enum { kShortLived = 8, kPerThread = 50 };
static pthread_mutex_t g_hold_lock = PTHREAD_MUTEX_INITIALIZER;

static void* short_lived(void* arg) {
  const int keep = arg != NULL;
  void* mine[kPerThread];
  for (int i = 0; i < kPerThread; ++i) mine[i] = malloc((size_t)(64 + i * 40));
  if (!keep) {
    for (int i = 0; i < kPerThread; ++i) free(mine[i]);
    return NULL;
  }
  pthread_mutex_lock(&g_hold_lock);
  for (int i = 0; i < kPerThread; ++i) hold(mine[i], kFree);
  pthread_mutex_unlock(&g_hold_lock);
  return NULL;
}

static void run_short_lived(int keep) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t t[kShortLived];
  for (int i = 0; i < kShortLived; ++i) pthread_create(&t[i], &attr, short_lived, keep ? (void*)1 : NULL);
  for (int i = 0; i < kShortLived; ++i) pthread_join(t[i], NULL);
  pthread_attr_destroy(&attr);
}

/* The helper thread runs commands sent through a pipe and answers on another. */
static int g_cmd[2], g_ack[2];

static void* helper(void* arg) {
  (void)arg;
  free(malloc(10)); /* first allocation of the thread happens before the test's first query */
  for (;;) {
    char c;
    if (read(g_cmd[0], &c, 1) != 1) return NULL;
    if (c == 'C') churn(7);
    if (c == 'A') {
      for (int i = 0; i < 500; ++i) hold(malloc((size_t)(32 + i % 500)), kFree);
      hold(aligned_alloc(4096, 8192), kFree);
      hold(calloc(100, 100), kFree);
    }
    if (c == 'F') {
      for (int i = 0; i < g_n; i += 2) release(&g_held[i]);
    }
    if (c == 'Q') return NULL;
    if (write(g_ack[1], &c, 1) != 1) return NULL;
  }
}

static void ask_helper(char c) {
  if (write(g_cmd[1], &c, 1) != 1) _exit(5);
  char r;
  if (read(g_ack[0], &r, 1) != 1) _exit(5);
}

int main(int argc, char** argv) {
  if (argc > 1) {
    void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      say("FAIL dlopen\n");
      return 2;
    }
    payload_make = (void* (*)(size_t))dlsym(h, "payload_make");
    payload_release = (void (*)(void*))dlsym(h, "payload_release");
    payload_make_aligned = (void* (*)(size_t))dlsym(h, "payload_make_aligned");
    payload_release_aligned = (void (*)(void*))dlsym(h, "payload_release_aligned");
    if (!payload_make || !payload_release || !payload_make_aligned || !payload_release_aligned) return 2;
    payload_release(payload_make(1)); /* resolve lazily bound calls now */
    payload_release_aligned(payload_make_aligned(1));
  }
  if (pipe(g_cmd) || pipe(g_ack)) return 2;
  pthread_t t;
  if (pthread_create(&t, NULL, helper, NULL) != 0) return 2;
  ask_helper('N'); /* helper is up */
  churn(1);        /* warm up every code path once, before the first query */
  ask_helper('C');
  run_short_lived(0); /* creates the cached thread stacks */
  say("ready\n");

  char line[64];
  while (read_line(0, line, sizeof line)) {
    if (strcmp(line, "hold") == 0) {
      churn(3);
      ask_helper('C');
      allocate_main_set();
      ask_helper('A');
      run_short_lived(1);
      unsigned long long bytes = 0;
      for (int i = 0; i < g_n; ++i) bytes += malloc_usable_size(g_held[i].p);
      char out[96];
      snprintf(out, sizeof out, "held %llu %d\n", bytes, g_n);
      say(out);
    } else if (strcmp(line, "free") == 0) {
      ask_helper('F'); /* even indexes, from the helper thread */
      for (int i = 1; i < g_n; i += 2) release(&g_held[i]);
      g_n = 0;
      say("freed\n");
    } else if (strcmp(line, "exit") == 0) {
      break;
    }
  }
  char q = 'Q';
  if (write(g_cmd[1], &q, 1) != 1) return 5;
  pthread_join(t, NULL);
  return 0;
}
