// A program to profile: once it gets SIGUSR1 it keeps 100 blocks of 4096 bytes from
// keep_records() and makes 50 temporary 128-byte blocks in churn_buffers(), prints the usable
// sizes of both kinds of block, then waits to be killed.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

constexpr int kKept = 100;
constexpr int kChurned = 50;
static void* g_kept[kKept];
static size_t g_churn_usable;

__attribute__((noinline)) void keep_records() {
  for (int i = 0; i < kKept; ++i) {
    g_kept[i] = std::malloc(4096);
    std::memset(g_kept[i], i, 4096);
  }
}

__attribute__((noinline)) void churn_buffers() {
  for (int i = 0; i < kChurned; ++i) {
    void* p = std::malloc(128);
    asm volatile("" : : "r"(p) : "memory");  // keep the pair
    g_churn_usable = malloc_usable_size(p);
    std::free(p);
  }
}

int main() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  keep_records();
  churn_buffers();
  std::printf("usable %zu %zu\n", malloc_usable_size(g_kept[0]), g_churn_usable);
  std::fflush(stdout);
  for (;;) pause();
}
