// malloc(32) + free, argv[1] times: what the allocation hooks add to one pair, counted in
// instructions under callgrind by startup_test.cc (deterministic where time is not). Each call
// must leave errno as it found it: exit status 3 otherwise. With "wait" as argv[2] it prints
// READY and reads a line from stdin before the loop (a test starts a capture in between); with
// a count as argv[3] too, it then prints DONE, reads another line and makes that many pairs
// more (the test has stopped the capture in between).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int wait_for_line(const char* say) {
  char line[16];
  puts(say);
  fflush(stdout);
  return fgets(line, sizeof line, stdin) != NULL;
}

static int pairs(long n) {
  int kept = 1;
  for (long i = 0; i < n; ++i) {
    errno = EDOM;
    void* p = malloc(32);
    __asm__ volatile("" : : "g"(p) : "memory");
    kept &= errno == EDOM;
    free(p);
    kept &= errno == EDOM;
  }
  return kept;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  const int wait = argc > 2 && strcmp(argv[2], "wait") == 0;
  if (wait && !wait_for_line("READY")) return 1;
  int kept = pairs(n);
  if (wait && argc > 3) {
    if (!wait_for_line("DONE")) return 1;
    kept &= pairs(atol(argv[3]));
  }
  return kept ? 0 : 3;
}
