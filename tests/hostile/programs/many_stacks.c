/* Live memory from 200 distinct call stacks (a recursion 1..200 deep, 16 blocks of 4 KiB at the
 * bottom of each): more call sites than a small RSR_MAX_SITES holds. Says "ready", waits for a
 * line on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kStacks = 200, kBlocks = 16, kBytes = 4096 };
static void* held[kStacks][kBlocks];

__attribute__((noinline)) static int hold(int stack, int depth) {
  volatile int here = depth;
  if (depth > 0) return hold(stack, depth - 1) + here;
  for (int i = 0; i < kBlocks; ++i) memset(held[stack][i] = malloc(kBytes), 1, kBytes);
  return here;
}

int main(void) {
  int sum = 0;
  for (int s = 0; s < kStacks; ++s) sum += hold(s, s + 1);
  printf("ready %d\n", sum > 0);
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 3;
  for (int s = 0; s < kStacks; ++s)
    for (int i = 0; i < kBlocks; ++i) free(held[s][i]);
  return 0;
}
