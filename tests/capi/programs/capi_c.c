/* A C service using the rsrmem C API (rsrmem.h), driven by its test through stdin:
 *   work      caches, leaks and scopes with known figures (see below); prints "result <n>"
 *   headers   prints "headers <length> <text with \r\n shown as |>"
 *   errno     calls every function with errno set; prints "errno <value after>" (4321)
 *   quit      exits
 * Its results are the same with and without the library; only the headers differ (empty
 * without it). It links against nothing but libc.
 *
 * Known figures of one `work`:
 *   cache "users": 7 hits, 3 misses; cache "sessions": 5 hits, 2 misses (one "get" ignored);
 *   leaks ("django_model", "medium") x2, ("cache_entry", "HIGH") x1;
 *   scope "checkout" x10, each allocating and freeing 3 MiB (retained 0);
 *   scope "report" x4, each keeping 256 KiB (retained >= 1 MiB in total);
 *   scope "outer" x1 holding scope "inner" x1: inner allocates 1 MiB, outer 2 MiB more. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rsrmem.h>

static unsigned long touch(char* p, size_t n) {
  memset(p, 1, n);
  return (unsigned long)p[n / 2] + (unsigned long)p[n - 1];
}

static unsigned long allocate_and_free(size_t n) {
  char* p = malloc(n);
  if (!p) return 0;
  const unsigned long r = touch(p, n);
  free(p);
  return r;
}

static char* g_kept[64];
static int g_nkept;

static unsigned long work(void) {
  unsigned long result = 0;
  for (int i = 0; i < 7; ++i) rsrmem_cache_hit("users");
  for (int i = 0; i < 3; ++i) rsrmem_cache_miss("users");
  for (int i = 0; i < 5; ++i) rsrmem_record_cache_operation("hit", "sessions");
  rsrmem_record_cache_operation("miss", "sessions");
  rsrmem_record_cache_operation("miss", "sessions");
  rsrmem_record_cache_operation("get", "sessions");
  rsrmem_record_memory_leak("django_model", "medium");
  rsrmem_record_memory_leak("django_model", "medium");
  rsrmem_record_memory_leak("cache_entry", "HIGH");

  for (int i = 0; i < 10; ++i) {
    const uint64_t t = rsrmem_scope_begin("checkout");
    result += allocate_and_free(3u << 20);
    rsrmem_scope_end(t);
  }
  for (int i = 0; i < 4 && g_nkept < 64; ++i) {
    const uint64_t t = rsrmem_scope_begin("report");
    char* p = malloc(256 << 10);
    if (p) {
      result += touch(p, 256 << 10);
      g_kept[g_nkept++] = p;
    }
    rsrmem_scope_end(t);
  }
  const uint64_t outer = rsrmem_scope_begin("outer");
  const uint64_t inner = rsrmem_scope_begin("inner");
  result += allocate_and_free(1u << 20);
  rsrmem_scope_end(inner);
  result += allocate_and_free(2u << 20);
  rsrmem_scope_end(outer);
  return result;
}

static void headers(void) {
  const uint64_t t = rsrmem_scope_begin("headers");
  char* p = malloc(100000);
  char buf[1024];
  const size_t n = rsrmem_memory_headers(buf, sizeof buf);
  /* Asked with a short buffer, it must say how much it needs and stay inside the buffer. */
  char small[8];
  memset(small, 'x', sizeof small);
  const size_t m = rsrmem_memory_headers(small, 5);
  const int small_ok = m == n && (n == 0 ? small[0] == '\0' : (small[4] == '\0' && small[5] == 'x'));
  free(p);
  rsrmem_scope_end(t);
  for (char* c = buf; *c; ++c)
    if (*c == '\r' || *c == '\n') *c = '|';
  printf("headers %zu small=%s %s\n", n, small_ok ? "ok" : "bad", buf);
}

static void errno_kept(void) {
  char buf[256];
  errno = 4321;
  rsrmem_cache_hit("errno");
  rsrmem_cache_miss("errno");
  rsrmem_record_memory_leak("errno", "low");
  rsrmem_scope_end(rsrmem_scope_begin("errno"));
  rsrmem_memory_headers(buf, sizeof buf);
  rsrmem_present();
  printf("errno %d\n", errno);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("present %d version %d\n", rsrmem_present(), rsrmem_api_version());
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strncmp(line, "work", 4) == 0) printf("result %lu\n", work());
    else if (strncmp(line, "headers", 7) == 0) headers();
    else if (strncmp(line, "errno", 5) == 0) errno_kept();
    else if (strncmp(line, "quit", 4) == 0) break;
  }
  for (int i = 0; i < g_nkept; ++i) free(g_kept[i]);
  printf("bye\n");
  return 0;
}
