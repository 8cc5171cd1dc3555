/* Built without PIE and taking malloc's address, as python3 is: the program then carries a
 * canonical PLT entry named "malloc", which lookups return in place of the real definition.
 * Holds 32 MiB live through that pointer, says "ready", waits for a line on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void* (*volatile allocate)(size_t) = malloc;

int main(void) {
  static void* held[8192];
  for (int i = 0; i < 8192; ++i) memset(held[i] = allocate(4096), 7, 4096);
  printf("ready\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 3;
  for (int i = 0; i < 8192; ++i) free(held[i]);
  return 0;
}
