// A program for heap profiles: holds kHeld blocks of kHeldSize bytes from hold_sessions() and
// makes kChurned blocks of kChurnSize from churn_buffers(), each freed at once; then creates
// <argv[1]>/ready. On SIGUSR1 it holds kLater more blocks of kHeldSize from later_phase() and
// creates <argv[1]>/later. Then it waits to be killed.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

constexpr int kHeld = 2048;
constexpr size_t kHeldSize = 16384;
constexpr int kChurned = 20000;
constexpr size_t kChurnSize = 4000;
constexpr int kLater = 1024;

static void* g_held[kHeld + kLater];

__attribute__((noinline)) void hold_sessions() {
  for (int i = 0; i < kHeld; ++i) {
    g_held[i] = std::malloc(kHeldSize);
    std::memset(g_held[i], i, 64);
  }
}

__attribute__((noinline)) void churn_buffers() {
  for (int i = 0; i < kChurned; ++i) {
    void* p = std::malloc(kChurnSize);
    asm volatile("" : : "r"(p) : "memory");  // keep the pair
    std::free(p);
  }
}

__attribute__((noinline)) void later_phase() {
  for (int i = kHeld; i < kHeld + kLater; ++i) {
    g_held[i] = std::malloc(kHeldSize);
    std::memset(g_held[i], i, 64);
  }
}

static void touch(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string dir = argv[1];
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  hold_sessions();
  churn_buffers();
  touch(dir + "/ready");
  int sig = 0;
  sigwait(&set, &sig);
  later_phase();
  touch(dir + "/later");
  for (;;) pause();
}
