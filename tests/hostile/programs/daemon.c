/* What daemons do to descriptors, one command per line on stdin, one answer per line on stdout
 * (0, 1 and 2 are never touched, so the test can keep talking to it):
 *
 *   closeall range|loop   close every descriptor >= 3 (close_range(3, ~0U, 0), or close() up
 *                         to the soft RLIMIT_NOFILE); answers "closed"
 *   tcp N AT              listen on 127.0.0.1 under descriptor number AT (0: wherever): it opens
 *                         /dev/null until AT is the lowest free number, as a daemon's log and pid
 *                         files would, or dup2()s onto AT when something else holds it; says
 *                         "port P fd F", answers N clients
 *                         ("ping I" -> "pong I <pid>"); answers "tcp served K" (K < N after 20 s
 *                         without a client)
 *   file PATH N [threads] write N records to PATH through a fresh descriptor, spread over about
 *                         a second, then read them back; answers "file ok N" or "file bad ...";
 *                         with "threads", a short-lived thread allocates every 200 records,
 *                         also in a signal handler (a stack the library leaves to libunwind)
 *   dup2 PATH MAXFD N     open PATH and dup2() it over every descriptor from 3 to MAXFD (raising
 *                         the soft limit first), write N records through them in turn, read them
 *                         back; answers "dup2 ok N" or "dup2 bad ..."; the copies stay open
 *   hog                   lower the soft RLIMIT_NOFILE to 128 and open /dev/null until EMFILE;
 *                         answers "hogged N"
 *   free                  closes what hog opened and restores the limit; answers "freed"
 *   sites K               allocates one block from each of 2^K distinct call stacks (K <= 12),
 *                         so summaries and metrics are large; answers "sites N"
 *   fork_exit N           forks N children that allocate, wait 300 ms and _exit(0) (no
 *                         destructors); reaps them; answers "reaped N"
 *   quit                  exits 0
 * Every command allocates a little on the way, so the library always has work to see. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char* fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  if (write(1, line, (size_t)n) < 0) _exit(3);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void close_all(const char* how) {
  if (strcmp(how, "range") == 0) {
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0) say("close_range failed: %s", strerror(errno));
  } else {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    for (int fd = 3; fd < (int)rl.rlim_cur; ++fd) close(fd);
  }
  say("closed");
}

static int read_line_fd(int fd, char* buf, size_t cap, int timeout_ms) {
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return -1;
    const ssize_t k = read(fd, buf + n, 1);
    if (k <= 0) return -1;
    if (buf[n] == '\n') break;
    ++n;
  }
  buf[n] = '\0';
  return (int)n;
}

static void serve_tcp(int clients, int at) {
  static int fillers[4096];
  int nfill = 0;
  while (at > 0 && nfill < 4096) {
    const int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) break;
    if (fd >= at) {
      close(fd);
      break;
    }
    fillers[nfill++] = fd;
  }
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls >= 0 && at > 0 && ls != at) {
    if (dup2(ls, at) != at) say("dup2 onto %d failed: %s", at, strerror(errno));
    close(ls);
    ls = at;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, (struct sockaddr*)&a, &len) != 0) {
    say("tcp failed: %s", strerror(errno));
    return;
  }
  say("port %d fd %d", ntohs(a.sin_port), ls);
  int served = 0;
  while (served < clients) {
    struct pollfd p = {ls, POLLIN, 0};
    if (poll(&p, 1, 20000) <= 0) break;
    const int c = accept(ls, NULL, NULL);
    if (c < 0) continue;
    char* line = malloc(256);
    if (read_line_fd(c, line, 256, 5000) >= 0) {
      int i = -1;
      if (sscanf(line, "ping %d", &i) == 1) {
        char out[64];
        const int n = snprintf(out, sizeof out, "pong %d %d\n", i, (int)getpid());
        if (write(c, out, (size_t)n) == n) ++served;
      }
    }
    free(line);
    close(c);
  }
  close(ls);
  while (nfill > 0) close(fillers[--nfill]);
  say("tcp served %d", served);
}

static int record(char* out, size_t cap, int i) {
  return snprintf(out, cap, "record %06d of %d: the quick brown fox\n", i, (int)getpid());
}

/* Reads PATH back and compares it with records 0..n-1; "" when it matches. */
static const char* check_records(const char* path, int n, char* why, size_t cap) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, cap, "cannot reopen: %s", strerror(errno));
    return why;
  }
  char want[128], got[128];
  for (int i = 0; i < n; ++i) {
    const int len = record(want, sizeof want, i);
    size_t have = 0;
    while (have < (size_t)len) {
      const ssize_t k = read(fd, got + have, (size_t)len - have);
      if (k <= 0) break;
      have += (size_t)k;
    }
    if (have != (size_t)len || memcmp(want, got, (size_t)len) != 0) {
      snprintf(why, cap, "record %d differs: %.*s", i, (int)(have > 60 ? 60 : have), got);
      close(fd);
      return why;
    }
  }
  const ssize_t extra = read(fd, got, sizeof got);
  close(fd);
  if (extra != 0) {
    snprintf(why, cap, "%zd unexpected bytes after the records: %.*s", extra, (int)(extra > 60 ? 60 : extra), got);
    return why;
  }
  return "";
}

static void on_usr2(int sig) {
  (void)sig;
  free(malloc(2048));
}

static void* thread_allocates(void* arg) {
  (void)arg;
  void* p = malloc(4096);
  free(p);
  raise(SIGUSR2);
  return NULL;
}

static int g_thread_each_200;

static int write_records(const int* fds, int nfds, int n) {
  char buf[128];
  for (int i = 0; i < n; ++i) {
    const int len = record(buf, sizeof buf, i);
    char* copy = malloc((size_t)len + 1); /* the service allocates as it goes */
    memcpy(copy, buf, (size_t)len);
    if (write(fds[i % nfds], copy, (size_t)len) != len) {
      say("write %d failed on fd %d: %s", i, fds[i % nfds], strerror(errno));
      free(copy);
      return 0;
    }
    free(copy);
    if (i % 200 == 199) {
      sleep_ms(50);
      pthread_t t;
      if (g_thread_each_200 && pthread_create(&t, NULL, thread_allocates, NULL) == 0) pthread_join(t, NULL);
    }
  }
  return 1;
}

static void file_records(const char* path, int n) {
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  if (fd < 0) {
    say("file bad: open: %s", strerror(errno));
    return;
  }
  const int ok = write_records(&fd, 1, n);
  close(fd);
  char why[256];
  const char* bad = check_records(path, n, why, sizeof why);
  if (ok && !*bad) say("file ok %d", n);
  else say("file bad %s", bad);
}

static void dup2_records(const char* path, int maxfd, int n) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur <= (rlim_t)maxfd + 64) {
    rl.rlim_cur = (rlim_t)maxfd + 64 < rl.rlim_max ? (rlim_t)maxfd + 64 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  if (fd < 0) {
    say("dup2 bad: open: %s", strerror(errno));
    return;
  }
  int* fds = malloc(sizeof(int) * (size_t)(maxfd + 1));
  int nfds = 0;
  for (int k = 3; k <= maxfd; ++k) {
    /* EBUSY: another thread of the process is opening a file at that very number (dup2(2));
     * a program with threads of its own retries, as this one does. */
    int r = k, tries = 0;
    while (k != fd && (r = dup2(fd, k)) != k && errno == EBUSY && ++tries < 100) usleep(1000);
    if (r != k) {
      say("dup2 bad: dup2 over %d: %s", k, strerror(errno));
      free(fds);
      return;
    }
    fds[nfds++] = k;
  }
  const int ok = write_records(fds, nfds, n);
  free(fds);
  char why[256];
  const char* bad = check_records(path, n, why, sizeof why);
  if (ok && !*bad) say("dup2 ok %d", n);
  else say("dup2 bad %s", bad);
}

static int g_hog[4096];
static int g_hogged;
static struct rlimit g_saved_limit;

static void hog(void) {
  getrlimit(RLIMIT_NOFILE, &g_saved_limit);
  struct rlimit rl = g_saved_limit;
  rl.rlim_cur = 128;
  setrlimit(RLIMIT_NOFILE, &rl);
  while (g_hogged < 4096) {
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    g_hog[g_hogged++] = fd;
  }
  say("hogged %d", g_hogged);
}

static void unhog(void) {
  while (g_hogged > 0) close(g_hog[--g_hogged]);
  setrlimit(RLIMIT_NOFILE, &g_saved_limit);
  say("freed");
}

static void* g_site_blocks[1 << 12];
static int g_site_count;

/* 2^K paths through step_a/step_b: each level's return address says which one called, so every
 * path is a call site of its own. The empty asm keeps the calls from becoming jumps. */
static void step_a(unsigned bits, int level);
static void step_b(unsigned bits, int level);
__attribute__((noinline)) static void step_leaf(void) {
  if (g_site_count < (1 << 12)) g_site_blocks[g_site_count++] = malloc(64);
}
__attribute__((noinline)) static void step_a(unsigned bits, int level) {
  if (level == 0) step_leaf();
  else if (bits & 1) step_b(bits >> 1, level - 1);
  else step_a(bits >> 1, level - 1);
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) static void step_b(unsigned bits, int level) {
  if (level == 0) step_leaf();
  else if (bits & 1) step_b(bits >> 1, level - 1);
  else step_a(bits >> 1, level - 1);
  __asm__ volatile("" ::: "memory");
}

static void sites(int k) {
  if (k > 12) k = 12;
  for (unsigned bits = 0; bits < (1u << k); ++bits) step_a(bits, k);
  say("sites %d", g_site_count);
}

static void fork_exit(int n) {
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      void* p = malloc(1000);
      sleep_ms(300);
      free(p);
      _exit(0);
    }
    if (pid > 0) say("child %d", (int)pid);
  }
  int reaped = 0;
  while (reaped < n && wait(NULL) > 0) ++reaped;
  say("reaped %d", reaped);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  say("ready %d", (int)getpid());
  char line[4096];
  for (;;) {
    if (read_line_fd(0, line, sizeof line, -1) < 0) return 0;
    char* keep = strdup(line);
    char a[4096] = "";
    int x = 0, y = 0;
    if (sscanf(line, "closeall %15s", a) == 1) close_all(a);
    else if (sscanf(line, "tcp %d %d", &x, &y) == 2) serve_tcp(x, y);
    else if (sscanf(line, "file %4095s %d", a, &x) == 2) {
      g_thread_each_200 = strstr(line, " threads") != NULL;
      file_records(a, x);
    }
    else if (sscanf(line, "dup2 %4095s %d %d", a, &x, &y) == 3) dup2_records(a, x, y);
    else if (strcmp(line, "hog") == 0) hog();
    else if (strcmp(line, "free") == 0) unhog();
    else if (sscanf(line, "sites %d", &x) == 1) sites(x);
    else if (sscanf(line, "fork_exit %d", &x) == 1) fork_exit(x);
    else if (strcmp(line, "quit") == 0) return 0;
    else say("unknown command: %s", line);
    free(keep);
  }
}
