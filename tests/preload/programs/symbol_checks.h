/* Shared by symbols.c and symbols.cc: proves that every allocation symbol of the process resolves
 * to librsrmem, that libmimalloc (which the preload uses privately, and which Debian builds as a
 * malloc override) captured none of them, and that the preload forwards to glibc's allocator.
 * Usage: symbols <payload.so> */
#ifndef RSR_TEST_SYMBOL_CHECKS_H
#define RSR_TEST_SYMBOL_CHECKS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char* const kPreloadSymbols[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size",
    /* operator new / new[]: plain, nothrow, aligned, aligned nothrow */
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    /* operator delete / delete[]: plain, sized, nothrow, aligned, sized aligned, aligned nothrow */
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

/* glibc's own entry points, which libmimalloc also exports: they must stay glibc's. */
static const char* const kLibcInternal[] = {"__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
                                            "__libc_memalign", "__libc_valloc", "__libc_pvalloc"};

static const char* owner_of(const void* addr) {
  Dl_info info;
  if (!addr || !dladdr(addr, &info) || !info.dli_fname) return "(unknown)";
  return info.dli_fname;
}

/* The path of the mapping holding p in /proc/self/maps ("" for anonymous, "(none)" if unmapped). */
static void mapping_of(const void* p, char* out, size_t cap) {
  snprintf(out, cap, "(none)");
  FILE* f = fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[4096];
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int off = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s%n", &lo, &hi, &off) < 2) continue;
    if ((uintptr_t)p < lo || (uintptr_t)p >= hi) continue;
    const char* path = line + off;
    while (*path == ' ') ++path;
    snprintf(out, cap, "%s", path);
    out[strcspn(out, "\n")] = '\0';
    break;
  }
  fclose(f);
}

/* A block from glibc's main arena lies in [heap] (brk); mimalloc never uses brk. */
static void check_from_glibc(const char* what, void* p, size_t size, size_t arena_growth) {
  char where[4096];
  mapping_of(p, where, sizeof where);
  check(strstr(where, "mimalloc") == NULL, "block not in a libmimalloc mapping", "%s: %s", what, where);
  if (size < 64 * 1024) check(strcmp(where, "[heap]") == 0, "block from glibc's heap", "%s lies in '%s'", what, where);
  check(arena_growth >= size, "glibc's arena accounts for the block", "%s: mallinfo2 grew by %zu < %zu", what,
        arena_growth, size);
}

static size_t arena_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static void run_symbol_checks(const char* payload_path) {
  for (size_t i = 0; i < sizeof kPreloadSymbols / sizeof kPreloadSymbols[0]; ++i) {
    const char* name = kPreloadSymbols[i];
    void* a = dlsym(RTLD_DEFAULT, name);
    const char* who = owner_of(a);
    char label[128];
    snprintf(label, sizeof label, "%s resolves to librsrmem", name);
    check(a != NULL && strstr(who, "librsrmem") != NULL, label, "resolved to %s", a ? who : "nothing");
  }
  for (size_t i = 0; i < sizeof kLibcInternal / sizeof kLibcInternal[0]; ++i) {
    void* a = dlsym(RTLD_DEFAULT, kLibcInternal[i]);
    char label[128];
    snprintf(label, sizeof label, "%s is not libmimalloc's", kLibcInternal[i]);
    check(a == NULL || strstr(owner_of(a), "mimalloc") == NULL, label, "resolved to %s", owner_of(a));
  }
  check(dlsym(RTLD_DEFAULT, "mi_malloc") == NULL, "mi_malloc not in the global scope", "found in %s",
        owner_of(dlsym(RTLD_DEFAULT, "mi_malloc")));
  check(dlsym(RTLD_DEFAULT, "mi_free") == NULL, "mi_free not in the global scope", "found in %s",
        owner_of(dlsym(RTLD_DEFAULT, "mi_free")));

  /* Forwarding reaches glibc: blocks come from glibc's heap and show in glibc's statistics. */
  size_t before = arena_in_use();
  void* p = malloc(50000);
  check_from_glibc("malloc(50000)", p, 50000, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  p = malloc(64);
  check_from_glibc("malloc(64)", p, 64, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  p = calloc(100, 100);
  check_from_glibc("calloc(100,100)", p, 10000, arena_in_use() - before);
  before = arena_in_use();
  p = realloc(p, 30000);
  check_from_glibc("realloc(p,30000)", p, 30000 - 10000, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  p = memalign(256, 20000);
  check_from_glibc("memalign(256,20000)", p, 20000, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  if (posix_memalign(&p, 64, 20000) != 0) p = NULL;
  check_from_glibc("posix_memalign(64,20000)", p, 20000, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  p = aligned_alloc(128, 20480);
  check_from_glibc("aligned_alloc(128,20480)", p, 20480, arena_in_use() - before);
  free(p);
  before = arena_in_use();
  p = malloc(1 << 20);
  check_from_glibc("malloc(1 MiB)", p, 1 << 20, arena_in_use() - before);
  free(p);

  /* operator new as bound inside a C++ object dlopen'ed by this program */
  void* h = dlopen(payload_path, RTLD_NOW | RTLD_LOCAL);
  check(h != NULL, "dlopen payload", "%s", dlerror());
  if (!h) return;
  void* (*new_addr)(void) = (void* (*)(void))dlsym(h, "payload_new_address");
  void* (*delete_addr)(void) = (void* (*)(void))dlsym(h, "payload_delete_address");
  void* (*make)(size_t) = (void* (*)(size_t))dlsym(h, "payload_make");
  void (*release)(void*) = (void (*)(void*))dlsym(h, "payload_release");
  if (!new_addr || !delete_addr || !make || !release) {
    check(0, "payload symbols", "missing");
    return;
  }
  check(strstr(owner_of(new_addr()), "librsrmem") != NULL, "operator new bound in dlopen'ed C++ is librsrmem's",
        "bound to %s", owner_of(new_addr()));
  check(strstr(owner_of(delete_addr()), "librsrmem") != NULL, "operator delete bound in dlopen'ed C++ is librsrmem's",
        "bound to %s", owner_of(delete_addr()));
  before = arena_in_use();
  p = make(40000);
  check_from_glibc("new char[40000] in dlopen'ed C++", p, 40000, arena_in_use() - before);
  release(p);
  dlclose(h);
}

#endif
