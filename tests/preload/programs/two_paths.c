/* One allocating function reached alternately from two callers whose frames are alike, so the
 * allocation returns to the same instruction with the same stack pointer on both paths, and only
 * the return addresses further up tell the stacks apart:
 *   path_a(): 30,000 blocks of 40 bytes     path_b(): 10,000 blocks of 200 bytes
 * Allocates once a first line comes on stdin (the library is then fully started: its stack
 * memos need its private heap); prints "held <path> <usable bytes> <blocks>" for each, then
 * "ready", and waits for a second line. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

enum { kRounds = 10000, kAPerRound = 3 };
static void* a[kRounds * kAPerRound];
static void* b[kRounds];

__attribute__((noinline)) static void* leaf(size_t n) {
  void* p = malloc(n);
  __asm__ volatile("" ::: "memory"); /* not a tail call: malloc returns here */
  return p;
}

__attribute__((noinline)) static void path_a(int i) {
  a[i] = leaf(40);
  __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void path_b(int i) {
  b[i] = leaf(200);
  __asm__ volatile("" ::: "memory");
}

int main(void) {
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (int r = 0; r < kRounds; ++r) {
    for (int k = 0; k < kAPerRound; ++k) path_a(r * kAPerRound + k);
    path_b(r);
  }
  size_t bytes_a = 0, bytes_b = 0;
  for (int i = 0; i < kRounds * kAPerRound; ++i) bytes_a += malloc_usable_size(a[i]);
  for (int i = 0; i < kRounds; ++i) bytes_b += malloc_usable_size(b[i]);
  printf("held path_a %zu %d\nheld path_b %zu %d\nready\n", bytes_a, kRounds * kAPerRound, bytes_b, kRounds);
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 1;
  return 0;
}
