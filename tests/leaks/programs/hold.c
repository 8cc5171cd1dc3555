/* Holds a given amount of heap, every page touched so RSS rises with it, for the high_memory and
 * memory_growth tests. It allocates nothing else while it waits, so its live heap is what it
 * holds plus a few stdio buffers.
 *
 * Usage: hold <MiB>
 * stdout: "held <bytes>" once the memory is held and touched.
 * stdin:  "grow <percent>" allocates percent% of what is held now, in one go (in 256 KiB
 *         blocks, touched), then prints "grown <added_bytes> held <bytes>";
 *         "quit" or EOF exits 0. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBlock = 256 * 1024, kMaxBlocks = 1 << 16 };
static char* g_blocks[kMaxBlocks];
static size_t g_count;
static size_t g_held; /* usable bytes */

/* Allocates `bytes` more (rounded up to whole blocks), touching every page. */
__attribute__((noinline)) static size_t hold_memory(size_t bytes) {
  size_t added = 0;
  while (added < bytes && g_count < kMaxBlocks) {
    char* p = malloc(kBlock);
    if (!p) break;
    for (size_t off = 0; off < kBlock; off += 4096) p[off] = 1;
    g_blocks[g_count++] = p;
    added += malloc_usable_size(p);
  }
  g_held += added;
  return added;
}

__attribute__((noinline)) static size_t grow_heap(double percent) {
  return hold_memory((size_t)((double)g_held * percent / 100.0));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: hold <MiB>\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  hold_memory((size_t)(atof(argv[1]) * 1048576.0));
  printf("held %zu\n", g_held);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    double percent;
    if (sscanf(line, "grow %lf", &percent) == 1) {
      const size_t added = grow_heap(percent);
      printf("grown %zu held %zu\n", added, g_held);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    }
  }
  for (size_t i = 0; i < g_count; ++i) free(g_blocks[i]);
  return 0;
}
