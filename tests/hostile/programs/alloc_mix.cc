// Every allocation entry point, from several threads and a forked child, whatever allocator the
// process has. Prints a transcript that does not depend on addresses (compared with the run
// without the preload), then holds 32 MiB live in 4 KiB blocks, says "ready" and waits for a
// line on stdin before freeing them and saying "done".
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <vector>

namespace {

constexpr int kHeld = 8192;
constexpr size_t kHeldBytes = 4096;

bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

// One round over the whole API; returns how many checks failed.
int round_trip(int seed) {
  int bad = 0;
  auto check = [&bad](bool ok) { bad += ok ? 0 : 1; };
  char* a = static_cast<char*>(malloc(100 + seed));
  check(a && malloc_usable_size(a) >= 100u + seed);
  memset(a, 1, 100 + seed);
  a = static_cast<char*>(realloc(a, 10000));
  check(a && a[99] == 1);
  a = static_cast<char*>(reallocarray(a, 30, 1000));
  check(a && a[0] == 1);
  free(a);
  int* c = static_cast<int*>(calloc(1000, sizeof(int)));
  bool zero = c != nullptr;
  for (int i = 0; c && i < 1000; ++i) zero = zero && c[i] == 0;
  check(zero);
  free(c);
  void* pm = nullptr;
  check(posix_memalign(&pm, 256, 3000) == 0 && aligned(pm, 256));
  free(pm);
  void* al = aligned_alloc(64, 640);
  check(al && aligned(al, 64));
  free(al);
  void* ma = memalign(128, 1000);
  check(ma && aligned(ma, 128));
  free(ma);
  void* va = valloc(5000);
  check(va && aligned(va, 4096));
  free(va);
  void* pv = pvalloc(5000);
  check(pv && aligned(pv, 4096) && malloc_usable_size(pv) >= 8192);
  free(pv);
  std::string s(1000 + seed, 'x');
  s += s;
  check(s.size() == 2u * (1000 + seed));
  auto* v = new std::vector<int>(5000, seed);
  check((*v)[4999] == seed);
  delete v;
  int* arr = new int[777];
  arr[776] = 1;
  delete[] arr;
  int* nt = new (std::nothrow) int[10];
  check(nt != nullptr);
  delete[] nt;
  struct alignas(128) Wide {
    char b[300];
  };
  auto* w = new Wide;
  check(aligned(w, 128));
  delete w;
  auto* wa = new Wide[3];
  check(aligned(wa, 128));
  delete[] wa;
  return bad;
}

void* worker(void* arg) {
  const int id = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  int bad = 0;
  for (int i = 0; i < 2000; ++i) bad += round_trip(id + i % 7);
  return reinterpret_cast<void*>(static_cast<intptr_t>(bad));
}

}  // namespace

int main() {
  int bad = round_trip(0);
  pthread_t t[4];
  for (int i = 0; i < 4; ++i) pthread_create(&t[i], nullptr, worker, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  for (int i = 0; i < 4; ++i) {
    void* r = nullptr;
    pthread_join(t[i], &r);
    bad += static_cast<int>(reinterpret_cast<intptr_t>(r));
  }
  const pid_t child = fork();
  if (child == 0) _exit(round_trip(3) == 0 ? 0 : 1);
  int status = 0;
  waitpid(child, &status, 0);
  printf("api checks failed: %d\nchild: %d\n", bad, WIFEXITED(status) ? WEXITSTATUS(status) : 128);
  std::vector<void*> held(kHeld);
  for (auto& p : held) {
    p = malloc(kHeldBytes);
    memset(p, 7, kHeldBytes);
  }
  printf("ready\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 3;
  for (void* p : held) free(p);
  printf("done\n");
  return 0;
}
