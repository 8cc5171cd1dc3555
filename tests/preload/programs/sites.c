/* Two call sites with known totals, for the per-site estimate test:
 *   small_blocks(): 200,000 blocks of 100 bytes     big_blocks(): 40 blocks of 256 KiB
 * Prints "held <site> <usable bytes> <blocks>" for each, then "ready", and waits for a line on
 * stdin; then frees the small blocks, prints "freed" and waits again. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

enum { kSmall = 200000, kBig = 40 };
static void* small[kSmall];
static void* big[kBig];

__attribute__((noinline)) static void small_blocks(void) {
  size_t bytes = 0;
  for (int i = 0; i < kSmall; ++i) {
    small[i] = malloc(100);
    bytes += malloc_usable_size(small[i]);
  }
  printf("held small_blocks %zu %d\n", bytes, kSmall);
}

__attribute__((noinline)) static void big_blocks(void) {
  size_t bytes = 0;
  for (int i = 0; i < kBig; ++i) {
    big[i] = malloc(256 * 1024);
    bytes += malloc_usable_size(big[i]);
  }
  printf("held big_blocks %zu %d\n", bytes, kBig);
}

int main(void) {
  char line[64];
  small_blocks();
  big_blocks();
  printf("ready\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (int i = 0; i < kSmall; ++i) free(small[i]);
  printf("freed\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (int i = 0; i < kBig; ++i) free(big[i]);
  return 0;
}
