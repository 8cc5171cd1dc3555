/* A pre-fork server in miniature where exactly one worker leaks, for the per-process leak test.
 *
 * The parent forks 3 workers. Worker 1 (the second) keeps every "request record" it makes in
 * leaky_worker_store(), a table that only grows (2 KiB records at `leak_bytes_per_s`); workers
 * 0 and 2 run worker_churn(): request-sized temporaries and short-held bursts of 1..4 MiB (held
 * 10..30 ms every 150..400 ms: temporary at the library's probe scale, see workload.h). The
 * parent stays idle.
 *
 * Usage: prefork_leak [leak_bytes_per_s]   (default 262144)
 * stdout: "worker <i> <pid>" per worker once it runs, then "parent <pid>" when all are up.
 * stdin:  EOF (or "quit") makes the parent close the workers' pipe; workers see EOF and exit, the
 *         parent reaps them and prints "parent done <worst exit code>". */
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kWorkers = 3, kLeaker = 1, kRecordBytes = 2048 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const char* line) {
  /* one write per line: lines from several processes on one pipe must not interleave */
  size_t n = strlen(line);
  while (n > 0) {
    ssize_t k = write(1, line, n);
    if (k <= 0) return;
    line += k;
    n -= (size_t)k;
  }
}

/* True once the parent closed the pipe; doubles as the worker's 1 ms sleep. */
static int parent_gone(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 1) <= 0) return 0;
  char c;
  return read(fd, &c, 1) <= 0;
}

static void** g_records;
static size_t g_count, g_cap;

/* The leak: records are kept forever. */
__attribute__((noinline)) static void leaky_worker_store(uint64_t id) {
  if (g_count == g_cap) {
    g_cap = g_cap ? g_cap * 2 : 1024;
    g_records = realloc(g_records, g_cap * sizeof *g_records);
  }
  char* r = malloc(kRecordBytes);
  memset(r, (int)(id & 0x7f), kRecordBytes);
  g_records[g_count++] = r;
}

static unsigned next_rand(unsigned* s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

static double g_next_burst;

/* One tick of temporary churn: a request-sized batch, and now and then a short-held burst. */
__attribute__((noinline)) static void worker_churn(unsigned* seed) {
  void* batch[48];
  const unsigned n = 8 + next_rand(seed) % 41;
  for (unsigned i = 0; i < n; ++i) {
    batch[i] = malloc(16 + next_rand(seed) % 2033);
    ((char*)batch[i])[0] = (char)i;
  }
  for (unsigned i = 0; i < n; ++i) free(batch[i]);
  if (now_s() >= g_next_burst) {
    void* burst[128];
    size_t held = 0, k = 0;
    const size_t target = (size_t)(1 + next_rand(seed) % 4) << 20;
    while (held < target && k < 128) {
      const size_t size = (size_t)(1 + next_rand(seed) % 16) << 16;
      char* p = malloc(size);
      for (size_t off = 0; off < size; off += 4096) p[off] = 1;
      burst[k++] = p;
      held += size;
    }
    usleep(10000 + next_rand(seed) % 20000);
    for (size_t i = 0; i < k; ++i) free(burst[i]);
    g_next_burst = now_s() + 0.150 + (double)(next_rand(seed) % 250) / 1000.0;
  }
}

static int worker(int index, int hold_fd, double leak_bytes_per_s) {
  char line[64];
  snprintf(line, sizeof line, "worker %d %d\n", index, (int)getpid());
  say(line);
  unsigned seed = 1000u + (unsigned)index;
  const double start = now_s();
  uint64_t stored = 0;
  g_next_burst = start + 0.2;
  while (!parent_gone(hold_fd)) {
    if (index == kLeaker) {
      const uint64_t due = (uint64_t)((now_s() - start) * leak_bytes_per_s / kRecordBytes);
      while (stored < due) leaky_worker_store(stored++);
    } else {
      worker_churn(&seed);
    }
  }
  for (size_t i = 0; i < g_count; ++i) free(g_records[i]);
  free(g_records);
  return 0;
}

int main(int argc, char** argv) {
  const double leak_bytes_per_s = argc > 1 ? atof(argv[1]) : 262144;
  int hold[2];
  if (pipe(hold) != 0) return 2;
  pid_t kids[kWorkers];
  for (int i = 0; i < kWorkers; ++i) {
    kids[i] = fork();
    if (kids[i] < 0) return 2;
    if (kids[i] == 0) {
      close(hold[1]);
      exit(worker(i, hold[0], leak_bytes_per_s)); /* exit, not _exit: the library cleans up */
    }
  }
  close(hold[0]);
  char line[64];
  snprintf(line, sizeof line, "parent %d\n", (int)getpid());
  say(line);

  char buf[256];
  ssize_t k;
  while ((k = read(0, buf, sizeof buf)) > 0) {
    if (memmem(buf, (size_t)k, "quit", 4)) break;
  }
  close(hold[1]);
  int worst = 0;
  for (int i = 0; i < kWorkers; ++i) {
    int st = 0;
    waitpid(kids[i], &st, 0);
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code > worst) worst = code;
  }
  snprintf(line, sizeof line, "parent done %d\n", worst);
  say(line);
  return worst;
}
