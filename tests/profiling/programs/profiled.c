/* A service with known allocation sites, driven line by line on stdin:
 *   run     3 threads: alloc_pages keeps 1000 x 4096 bytes, make_names allocates 500 x 100 bytes
 *           and frees them, touch_few allocates and frees 10 x 333 bytes; prints their tids
 *   churn N N malloc/free pairs of varied sizes (a lot of events)
 *   loop N  N rounds of a request handler's allocations: 100, 2000 and 30 bytes, freed in the
 *           same order each round
 *   handoff N  a producer thread allocates N blocks of 200 bytes that a consumer thread frees,
 *           and the consumer allocates N of 300 bytes that the producer frees; prints both tids
 *   give    a thread allocates 91 bytes, hands the block to the main thread and waits (quiet)
 *           until "give-end"; the main thread frees it at once; prints the thread's tid
 *   scopes  3 scopes "req/a" on a new thread (7 x 64 bytes each, 3 freed inside) while the main
 *           thread allocates outside any scope; prints the scope thread's tid
 *   fork    forks; the child allocates, prints "child <pid>", waits for its parent to say
 *           "child-exit" through a pipe... (it simply sleeps until killed or 30 s)
 *   quiet   a thread allocates 77 bytes, sleeps 300 ms, allocates 78 bytes and then waits (quiet)
 *           until "quiet-end"; prints its tid after the second allocation
 *   exit    exit(0)
 * At start it prints the functions' addresses and the usable sizes of its blocks. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rsrmem.h"

#define PAGES 1000
#define NAMES 500
#define FEW 10

static void* volatile sink;
static pid_t tids[3];

__attribute__((noinline)) void alloc_pages(void** keep) {
  for (int i = 0; i < PAGES; ++i) {
    keep[i] = malloc(4096);
    memset(keep[i], 1, 16);
  }
  sink = keep;
}

__attribute__((noinline)) void make_names(void) {
  static char* names[NAMES];
  for (int i = 0; i < NAMES; ++i) {
    names[i] = malloc(100);
    snprintf(names[i], 100, "name-%d", i);
  }
  for (int i = 0; i < NAMES; ++i) free(names[i]);
  sink = names;
}

__attribute__((noinline)) void touch_few(void) {
  void* p[FEW];
  for (int i = 0; i < FEW; ++i) p[i] = malloc(333);
  for (int i = 0; i < FEW; ++i) free(p[i]);
  sink = p[0];
}

static void* pages_thread(void* arg) {
  tids[0] = (pid_t)syscall(SYS_gettid);
  alloc_pages((void**)arg);
  return NULL;
}
static void* names_thread(void* arg) {
  (void)arg;
  tids[1] = (pid_t)syscall(SYS_gettid);
  make_names();
  return NULL;
}
static void* few_thread(void* arg) {
  (void)arg;
  tids[2] = (pid_t)syscall(SYS_gettid);
  touch_few();
  return NULL;
}

__attribute__((noinline)) void scoped_work(void) {
  for (int s = 0; s < 3; ++s) {
    uint64_t token = rsrmem_scope_begin("req/a");
    void* p[7];
    for (int i = 0; i < 7; ++i) p[i] = malloc(64);
    for (int i = 0; i < 3; ++i) free(p[i]);
    rsrmem_scope_end(token);
    sink = p[5];
  }
}

static volatile int scope_done;
static void* scope_thread(void* arg) {
  *(pid_t*)arg = (pid_t)syscall(SYS_gettid);
  scoped_work();
  scope_done = 1;
  return NULL;
}

static pthread_mutex_t quiet_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t quiet_cv = PTHREAD_COND_INITIALIZER;
static int quiet_state; /* 1: allocated twice, 2: may end */
static void* quiet_thread(void* arg) {
  *(pid_t*)arg = (pid_t)syscall(SYS_gettid);
  void* first = malloc(77);
  usleep(300 * 1000);
  void* second = malloc(78);
  pthread_mutex_lock(&quiet_mu);
  quiet_state = 1;
  pthread_cond_broadcast(&quiet_cv);
  while (quiet_state != 2) pthread_cond_wait(&quiet_cv, &quiet_mu);
  pthread_mutex_unlock(&quiet_mu);
  free(first);
  free(second);
  return NULL;
}

static void loop(long n) {
  for (long i = 0; i < n; ++i) {
    char* a = malloc(100);
    char* b = malloc(2000);
    a[0] = b[0] = 1;
    free(a);
    char* c = malloc(30);
    c[0] = 1;
    free(c);
    free(b);
  }
}

/* A ring of blocks between two threads, each way. */
struct ring {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void* slot[16];
  long head, tail;
};
static struct ring to_consumer = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};
static struct ring to_producer = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0};
static void ring_put(struct ring* r, void* p) {
  pthread_mutex_lock(&r->mu);
  while (r->tail - r->head == 16) pthread_cond_wait(&r->cv, &r->mu);
  r->slot[r->tail++ % 16] = p;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}
static void* ring_take(struct ring* r) {
  pthread_mutex_lock(&r->mu);
  while (r->tail == r->head) pthread_cond_wait(&r->cv, &r->mu);
  void* p = r->slot[r->head++ % 16];
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return p;
}
static long handoff_n;
static pid_t handoff_tids[2];
static void* producer(void* arg) {
  (void)arg;
  handoff_tids[0] = (pid_t)syscall(SYS_gettid);
  for (long i = 0; i < handoff_n; ++i) {
    ring_put(&to_consumer, malloc(200));
    free(ring_take(&to_producer));
  }
  return NULL;
}
static void* consumer(void* arg) {
  (void)arg;
  handoff_tids[1] = (pid_t)syscall(SYS_gettid);
  for (long i = 0; i < handoff_n; ++i) {
    free(ring_take(&to_consumer));
    ring_put(&to_producer, malloc(300));
  }
  return NULL;
}

static pthread_mutex_t give_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t give_cv = PTHREAD_COND_INITIALIZER;
static int give_state; /* 1: given, 2: may end */
static void* given;
static pid_t give_tid;
static void* give_thread(void* arg) {
  (void)arg;
  void* p = malloc(91);
  pthread_mutex_lock(&give_mu);
  give_tid = (pid_t)syscall(SYS_gettid);
  given = p;
  give_state = 1;
  pthread_cond_broadcast(&give_cv);
  while (give_state != 2) pthread_cond_wait(&give_cv, &give_mu);
  pthread_mutex_unlock(&give_mu);
  return NULL;
}

static void churn(long n) {
  unsigned x = 12345;
  void* slots[64] = {0};
  for (long i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    const unsigned k = (x >> 8) & 63;
    free(slots[k]);
    slots[k] = malloc(16 + ((x >> 16) & 4095));
  }
  for (int k = 0; k < 64; ++k) free(slots[k]);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  void* a = malloc(4096);
  void* b = malloc(100);
  void* c = malloc(333);
  printf("ready alloc_pages=%p make_names=%p touch_few=%p scoped_work=%p usable4096=%zu usable100=%zu usable333=%zu\n",
         (void*)alloc_pages, (void*)make_names, (void*)touch_few, (void*)scoped_work, malloc_usable_size(a),
         malloc_usable_size(b), malloc_usable_size(c));
  free(a);
  free(b);
  free(c);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "run", 3) == 0) {
      void** keep = malloc(PAGES * sizeof(void*));
      pthread_t t[3];
      pthread_create(&t[0], NULL, pages_thread, keep);
      pthread_create(&t[1], NULL, names_thread, NULL);
      pthread_create(&t[2], NULL, few_thread, NULL);
      for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
      printf("done %d %d %d keep=%p\n", (int)tids[0], (int)tids[1], (int)tids[2], (void*)keep);
    } else if (strncmp(line, "loop", 4) == 0) {
      loop(atol(line + 5));
      printf("looped\n");
    } else if (strncmp(line, "handoff", 7) == 0) {
      handoff_n = atol(line + 8);
      pthread_t p, c;
      pthread_create(&p, NULL, producer, NULL);
      pthread_create(&c, NULL, consumer, NULL);
      pthread_join(p, NULL);
      pthread_join(c, NULL);
      printf("handed %d %d\n", (int)handoff_tids[0], (int)handoff_tids[1]);
    } else if (strncmp(line, "give-end", 8) == 0) {
      pthread_mutex_lock(&give_mu);
      give_state = 2;
      pthread_cond_broadcast(&give_cv);
      pthread_mutex_unlock(&give_mu);
      printf("give-ended\n");
    } else if (strncmp(line, "give", 4) == 0) {
      static pthread_t gt;
      give_state = 0;
      pthread_create(&gt, NULL, give_thread, NULL);
      pthread_mutex_lock(&give_mu);
      while (give_state != 1) pthread_cond_wait(&give_cv, &give_mu);
      void* p = given;
      pthread_mutex_unlock(&give_mu);
      free(p);
      printf("given %d\n", (int)give_tid);
    } else if (strncmp(line, "churn", 5) == 0) {
      churn(atol(line + 6));
      printf("churned\n");
    } else if (strncmp(line, "scopes", 6) == 0) {
      pid_t tid = 0;
      pthread_t t;
      scope_done = 0;
      pthread_create(&t, NULL, scope_thread, &tid);
      while (!scope_done) {
        void* p = malloc(48);
        sink = p;
        free(p);
      }
      pthread_join(t, NULL);
      printf("scoped %d\n", (int)tid);
    } else if (strncmp(line, "fork", 4) == 0) {
      pid_t pid = fork();
      if (pid == 0) {
        for (int i = 0; i < 100; ++i) free(malloc(100 + i));
        printf("child %d\n", (int)getpid());
        sleep(30);
        _exit(0);
      }
      usleep(50 * 1000); /* the child usually speaks first: readers must take either order */
      printf("forked %d\n", (int)pid);
    } else if (strncmp(line, "quiet-end", 9) == 0) {
      pthread_mutex_lock(&quiet_mu);
      quiet_state = 2;
      pthread_cond_broadcast(&quiet_cv);
      pthread_mutex_unlock(&quiet_mu);
      printf("quiet-ended\n");
    } else if (strncmp(line, "quiet", 5) == 0) {
      static pid_t quiet_tid;
      static pthread_t qt;
      quiet_state = 0;
      pthread_create(&qt, NULL, quiet_thread, &quiet_tid);
      pthread_mutex_lock(&quiet_mu);
      while (quiet_state != 1) pthread_cond_wait(&quiet_cv, &quiet_mu);
      pthread_mutex_unlock(&quiet_mu);
      pthread_detach(qt);
      printf("quiet %d\n", (int)quiet_tid);
    } else if (strncmp(line, "exit", 4) == 0) {
      exit(0);
    }
  }
  return 0;
}
