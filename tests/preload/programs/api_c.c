/* Exercises every C allocation function and its edge cases; prints a deterministic transcript.
 * The test runs it with and without the preload and requires identical output and exit status,
 * so every value printed here is one the next allocator (glibc) decides. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define KEEP_ERRNO(name, stmt)                                                     \
  do {                                                                             \
    errno = 1234;                                                                  \
    stmt;                                                                          \
    check(errno == 1234, "errno-kept " name, "errno changed to %d", errno);       \
  } while (0)

static void fill(unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (unsigned char)(seed + i * 131u);
}
static int intact(const unsigned char* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != (unsigned char)(seed + i * 131u)) return 0;
  return 1;
}
static int all_zero(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return 0;
  return 1;
}

static void test_malloc_free(void) {
  void* p0 = malloc(0);
  printf("malloc(0) -> %s, usable %zu\n", p0 ? "pointer" : "null", malloc_usable_size(p0));
  free(p0);
  KEEP_ERRNO("free(NULL)", free(NULL));
  check(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)", "%zu", malloc_usable_size(NULL));

  static const size_t sizes[] = {1, 8, 24, 25, 100, 1000, 4096, 65536, 131072, 1 << 20, 16 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    unsigned char* p;
    KEEP_ERRNO("malloc", p = malloc(sizes[i]));
    check(p != NULL, "malloc", "malloc(%zu) failed", sizes[i]);
    if (!p) continue;
    const size_t u = malloc_usable_size(p);
    check(u >= sizes[i], "usable>=size", "usable %zu < %zu", u, sizes[i]);
    check(aligned_to(p, 16), "malloc aligned 16", "size %zu", sizes[i]);
    /* Small sizes map to fixed chunk sizes; larger ones depend on the heap's layout (top chunk,
     * dynamic mmap threshold), which any preloaded library's start-up changes. */
    if (sizes[i] <= 4096) printf("usable(malloc(%zu)) = %zu\n", sizes[i], u);
    fill(p, u, (unsigned)i);
    check(intact(p, u, (unsigned)i), "malloc fill", "size %zu", sizes[i]);
    KEEP_ERRNO("free", free(p));
  }

  errno = 0;
  void* huge = malloc(SIZE_MAX);
  check(huge == NULL && errno == ENOMEM, "malloc(SIZE_MAX)", "%p errno %d", huge, errno);
  errno = 0;
  huge = malloc((size_t)PTRDIFF_MAX + 1);
  check(huge == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX+1)", "%p errno %d", huge, errno);
}

static void test_calloc(void) {
  unsigned char* dirty = malloc(8000);
  memset(dirty, 0xAB, 8000);
  free(dirty);
  unsigned char* z;
  KEEP_ERRNO("calloc", z = calloc(1000, 8));
  check(z && all_zero(z, 8000), "calloc zeroed (reused memory)", "not zero");
  free(z);
  z = calloc(1, 4 << 20);
  check(z && all_zero(z, 4 << 20), "calloc zeroed (large)", "not zero");
  free(z);
  z = calloc(0, 16);
  printf("calloc(0,16) -> %s\n", z ? "pointer" : "null");
  free(z);

  const size_t bad[][2] = {{SIZE_MAX, 2}, {(size_t)1 << 33, (size_t)1 << 33}, {2, SIZE_MAX / 2 + 1}, {SIZE_MAX, SIZE_MAX}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    errno = 0;
    void* p = calloc(bad[i][0], bad[i][1]);
    check(p == NULL && errno == ENOMEM, "calloc overflow", "calloc(%zu,%zu) -> %p errno %d", bad[i][0], bad[i][1], p, errno);
    free(p);
  }
}

static void test_realloc(void) {
  unsigned char* p;
  KEEP_ERRNO("realloc(NULL,n)", p = realloc(NULL, 100));
  check(p && malloc_usable_size(p) >= 100, "realloc(NULL,n) allocates", "%p", (void*)p);
  fill(p, 100, 7);
  KEEP_ERRNO("realloc grow", p = realloc(p, 100000));
  check(p && intact(p, 100, 7), "realloc grow keeps contents", "lost");
  fill(p, 100000, 9);
  KEEP_ERRNO("realloc grow mmap", p = realloc(p, 8 << 20));
  check(p && intact(p, 100000, 9), "realloc to mmap keeps contents", "lost");
  KEEP_ERRNO("realloc shrink", p = realloc(p, 10));
  check(p && intact(p, 10, 9), "realloc shrink keeps contents", "lost");
  check(malloc_usable_size(p) >= 10, "realloc shrink usable", "%zu", malloc_usable_size(p));
  printf("usable(realloc(p,10)) = %zu\n", malloc_usable_size(p));

  errno = 0;
  unsigned char* q = realloc(p, SIZE_MAX);
  check(q == NULL && errno == ENOMEM, "realloc(p,SIZE_MAX)", "%p errno %d", (void*)q, errno);
  check(intact(p, 10, 9), "failed realloc leaves block intact", "lost");

  void* r = realloc(p, 0);
  printf("realloc(p,0) -> %s\n", r ? "pointer" : "null");
  free(r);

  /* reallocarray */
  unsigned char* a;
  KEEP_ERRNO("reallocarray(NULL)", a = reallocarray(NULL, 10, 30));
  check(a && malloc_usable_size(a) >= 300, "reallocarray allocates", "%p", (void*)a);
  fill(a, 300, 3);
  KEEP_ERRNO("reallocarray grow", a = reallocarray(a, 100, 30));
  check(a && intact(a, 300, 3), "reallocarray keeps contents", "lost");
  errno = 0;
  void* b = reallocarray(a, SIZE_MAX / 2, 4);
  check(b == NULL && errno == ENOMEM, "reallocarray overflow", "%p errno %d", b, errno);
  check(intact(a, 300, 3), "reallocarray overflow leaves block", "lost");
  errno = 0;
  b = reallocarray(NULL, (size_t)1 << 33, (size_t)1 << 33);
  check(b == NULL && errno == ENOMEM, "reallocarray(NULL) overflow", "%p errno %d", b, errno);
  free(a);
}

static void test_aligned(void) {
  const long page = sysconf(_SC_PAGESIZE);

  /* posix_memalign: success */
  static const size_t good[] = {8, 16, 32, 64, 128, 256, 4096, 65536, 1 << 21};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; ++i) {
    void* p = (void*)1;
    int rc;
    KEEP_ERRNO("posix_memalign", rc = posix_memalign(&p, good[i], 100 + good[i]));
    check(rc == 0 && p && aligned_to(p, good[i]), "posix_memalign aligned", "align %zu rc %d", good[i], rc);
    if (rc == 0) {
      check(malloc_usable_size(p) >= 100 + good[i], "posix_memalign usable", "align %zu", good[i]);
      memset(p, 0x5A, 100 + good[i]);
      KEEP_ERRNO("free(posix_memalign)", free(p));
    }
  }
  /* posix_memalign: bad alignment -> EINVAL, *memptr and errno untouched */
  static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, (1 << 20) + 8};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    void* p = (void*)0x1234;
    errno = 1234;
    const int rc = posix_memalign(&p, bad[i], 64);
    check(rc == EINVAL, "posix_memalign bad alignment -> EINVAL", "align %zu rc %d", bad[i], rc);
    check(errno == 1234, "posix_memalign leaves errno", "align %zu errno %d", bad[i], errno);
    check(p == (void*)0x1234, "posix_memalign leaves *memptr on failure", "align %zu", bad[i]);
  }
  void* p = (void*)0x1234;
  int rc = posix_memalign(&p, 64, SIZE_MAX / 2);
  check(rc == ENOMEM && p == (void*)0x1234, "posix_memalign huge -> ENOMEM", "rc %d", rc);

  /* aligned_alloc */
  static const size_t al[] = {16, 64, 256, 4096, 65536};
  for (size_t i = 0; i < sizeof al / sizeof al[0]; ++i) {
    void* q;
    KEEP_ERRNO("aligned_alloc", q = aligned_alloc(al[i], al[i] * 3));
    check(q && aligned_to(q, al[i]), "aligned_alloc aligned", "align %zu", al[i]);
    check(q && malloc_usable_size(q) >= al[i] * 3, "aligned_alloc usable", "align %zu", al[i]);
    free(q);
  }
  errno = 0;
  void* q = aligned_alloc(64, SIZE_MAX / 2);
  check(q == NULL && errno == ENOMEM, "aligned_alloc huge", "%p errno %d", q, errno);
  q = aligned_alloc(64, 100); /* size not a multiple of the alignment: glibc accepts */
  printf("aligned_alloc(64,100) -> %s\n", q ? "pointer" : "null");
  free(q);

  /* memalign */
  static const size_t ma[] = {8, 32, 512, 8192, 1 << 20};
  for (size_t i = 0; i < sizeof ma / sizeof ma[0]; ++i) {
    void* m;
    KEEP_ERRNO("memalign", m = memalign(ma[i], 1000));
    check(m && aligned_to(m, ma[i]), "memalign aligned", "align %zu", ma[i]);
    check(m && malloc_usable_size(m) >= 1000, "memalign usable", "align %zu", ma[i]);
    /* realloc of an aligned block is allowed and keeps contents */
    fill(m, 1000, 11);
    m = realloc(m, 3000);
    check(m && intact(m, 1000, 11), "realloc(memalign) keeps contents", "align %zu", ma[i]);
    free(m);
  }

  /* valloc / pvalloc */
  void* v;
  KEEP_ERRNO("valloc", v = valloc(100));
  check(v && aligned_to(v, (size_t)page), "valloc page aligned", "%p", v);
  check(v && malloc_usable_size(v) >= 100, "valloc usable", "%zu", malloc_usable_size(v));
  free(v);
  KEEP_ERRNO("pvalloc", v = pvalloc(100));
  check(v && aligned_to(v, (size_t)page), "pvalloc page aligned", "%p", v);
  check(v && malloc_usable_size(v) >= (size_t)page, "pvalloc rounds up to a page", "%zu", malloc_usable_size(v));
  free(v);
  v = pvalloc(3 * (size_t)page + 1);
  check(v && malloc_usable_size(v) >= 4 * (size_t)page, "pvalloc rounds up to pages", "%zu", malloc_usable_size(v));
  free(v);
  errno = 0;
  v = valloc(SIZE_MAX / 2);
  check(v == NULL && errno == ENOMEM, "valloc huge", "%p errno %d", v, errno);
}

/* Blocks made by libc itself (strdup, asprintf, open_memstream, getline) go through malloc and
 * must be freeable with free. */
static void test_libc_internal(void) {
  char* s = strdup("hello, preload");
  check(s && strcmp(s, "hello, preload") == 0, "strdup", "bad");
  free(s);
  s = strndup("abcdefgh", 3);
  check(s && strcmp(s, "abc") == 0, "strndup", "bad");
  free(s);
  char* a = NULL;
  const int n = asprintf(&a, "%d-%s-%.2f", 42, "x", 1.5);
  check(n == 9 && a && strcmp(a, "42-x-1.50") == 0, "asprintf", "%d", n);
  free(a);
  char* buf = NULL;
  size_t len = 0;
  FILE* ms = open_memstream(&buf, &len);
  for (int i = 0; i < 1000; ++i) fprintf(ms, "line %d\n", i);
  fclose(ms);
  check(len > 8000 && buf != NULL, "open_memstream", "len %zu", len);
  FILE* in = fmemopen(buf, len, "r");
  char* line = NULL;
  size_t cap = 0;
  int lines = 0;
  while (getline(&line, &cap, in) > 0) ++lines;
  fclose(in);
  free(line);
  free(buf);
  check(lines == 1000, "getline", "%d lines", lines);
}

/* Many live blocks of every kind, freed in a scrambled order. */
static void test_many_blocks(void) {
  enum { N = 20000 };
  static void* blocks[N];
  static size_t sizes[N];
  uint64_t x = 88172645463325252ull, sum = 0;
  for (int i = 0; i < N; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t n = 1 + (size_t)(x % (i % 97 == 0 ? 300000 : 700));
    void* p;
    switch (i % 6) {
      case 0: p = malloc(n); break;
      case 1: p = calloc(1, n); break;
      case 2: p = realloc(NULL, n); break;
      case 3: p = memalign(64, n); break;
      case 4: if (posix_memalign(&p, 32, n)) p = NULL; break;
      default: p = aligned_alloc(16, (n + 15) & ~(size_t)15); break;
    }
    if (!p) {
      check(0, "many blocks alloc", "block %d", i);
      return;
    }
    fill(p, n, (unsigned)i);
    blocks[i] = p;
    sizes[i] = n;
  }
  int bad = 0;
  for (int k = 0; k < N; ++k) {
    const int i = (int)(((uint64_t)k * 7919u) % N);
    if (!intact(blocks[i], sizes[i], (unsigned)i)) ++bad;
    sum += sizes[i];
    free(blocks[i]);
  }
  check(bad == 0, "many blocks intact", "%d corrupted", bad);
  printf("many blocks: %d blocks, %llu bytes\n", N, (unsigned long long)sum);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_malloc_free();
  test_calloc();
  test_realloc();
  test_aligned();
  test_libc_internal();
  test_many_blocks();
  return finish();
}
