/* A pre-fork server in miniature: the parent forks N workers while its own threads are busy
 * allocating (so the fork lands while allocator and tracker locks may be held), and every worker
 * allocates, starts a thread, and stays alive until the parent closes the shared pipe.
 *
 * Usage: prefork [workers [delay_us]]
 * Protocol on stdout: "worker <i> <pid>" per worker once it has allocated after fork, then
 * "parent <pid>" when all workers are up. The parent waits for EOF on stdin, then lets the
 * workers exit normally, reaps them and prints "parent done <status>". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int g_stop;

static void* churn(void* arg) {
  unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
  void* keep[64] = {0};
  while (!atomic_load(&g_stop)) {
    x = x * 1103515245u + 12345u;
    const unsigned slot = (x >> 8) % 64;
    free(keep[slot]);
    keep[slot] = (x & 1) ? malloc(16 + (x >> 12) % 5000) : calloc(1, 8 + (x >> 12) % 300);
  }
  for (int i = 0; i < 64; ++i) free(keep[i]);
  return NULL;
}

static void* worker_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 10000; ++i) free(malloc((size_t)(i % 700) + 1));
  return malloc(100); /* freed by the joining thread */
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

static int worker(int index, int hold_fd) {
  /* Allocate right after fork: a lock left held across fork would hang here. */
  void* held[256];
  for (int i = 0; i < 256; ++i) held[i] = malloc((size_t)(index + 1) * 1024 + (size_t)i);
  pthread_t t;
  if (pthread_create(&t, NULL, worker_thread, NULL) != 0) return 2;
  void* from_thread = NULL;
  pthread_join(t, &from_thread);
  free(from_thread);
  char line[64];
  snprintf(line, sizeof line, "worker %d %d\n", index, (int)getpid());
  say(line);
  char c;
  while (read(hold_fd, &c, 1) > 0) {
  }
  for (int i = 0; i < 256; ++i) free(held[i]);
  return 0;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 3;
  const int delay_us = argc > 2 ? atoi(argv[2]) : 2000; /* before each fork */
  int hold[2];
  if (pipe(hold) != 0) return 2;

  pthread_t churners[4];
  for (int i = 0; i < 4; ++i) pthread_create(&churners[i], NULL, churn, (void*)(uintptr_t)(i + 1));

  pid_t kids[64];
  for (int i = 0; i < n && i < 64; ++i) {
    usleep((useconds_t)delay_us);
    kids[i] = fork();
    if (kids[i] < 0) return 2;
    if (kids[i] == 0) {
      close(hold[1]);
      exit(worker(i, hold[0])); /* exit, not _exit: the library cleans up at exit */
    }
  }
  close(hold[0]);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 4; ++i) pthread_join(churners[i], NULL);

  char line[64];
  snprintf(line, sizeof line, "parent %d\n", (int)getpid());
  say(line);

  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  close(hold[1]); /* workers see EOF and exit */
  int worst = 0;
  for (int i = 0; i < n; ++i) {
    int st = 0;
    waitpid(kids[i], &st, 0);
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code > worst) worst = code;
  }
  snprintf(line, sizeof line, "parent done %d\n", worst);
  say(line);
  return worst;
}
