// malloc(32) + free, argv[1] times: what the allocation hooks add to one pair, counted in
// instructions under callgrind by startup_test.cc (deterministic where time is not).
#include <stdlib.h>

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  for (long i = 0; i < n; ++i) {
    void* p = malloc(32);
    __asm__ volatile("" : : "g"(p) : "memory");
    free(p);
  }
  return 0;
}
