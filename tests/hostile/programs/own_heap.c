/* A program that keeps its heap in memory it maps itself (as runtimes with their own allocator
 * do): 128 MiB of anonymous memory, touched, and hardly any malloc. Says "ready", waits for a
 * line on stdin. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void) {
  const size_t size = (size_t)128 << 20;
  char* heap = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (heap == MAP_FAILED) return 2;
  memset(heap, 1, size);
  printf("ready\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 3;
  munmap(heap, size);
  return 0;
}
