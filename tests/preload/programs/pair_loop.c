// malloc(32) + free, argv[1] times: what the allocation hooks add to one pair, counted in
// instructions under callgrind by startup_test.cc (deterministic where time is not). Each call
// must leave errno as it found it: exit status 3 otherwise. With "wait" as argv[2] it prints
// READY and reads a line from stdin before the loop (a test starts a capture in between).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  if (argc > 2 && strcmp(argv[2], "wait") == 0) {
    char line[16];
    puts("READY");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 1;
  }
  int kept = 1;
  for (long i = 0; i < n; ++i) {
    errno = EDOM;
    void* p = malloc(32);
    __asm__ volatile("" : : "g"(p) : "memory");
    kept &= errno == EDOM;
    free(p);
    kept &= errno == EDOM;
  }
  return kept ? 0 : 3;
}
