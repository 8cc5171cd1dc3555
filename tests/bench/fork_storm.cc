// fork() while other threads allocate: --threads T workers (default 8) churn a working set of
// 4,096 blocks of 16 B..4 KiB each, while the main thread forks --ops N children one after
// another; each child allocates a little (as a pre-fork worker's first request would) and exits,
// and the parent waits for it. One op is one fork + wait. What it stresses: the library's fork
// handlers (quiescing and resuming its own threads and locks) against busy allocating threads,
// and the child's start-up (its own control thread and socket).
//
// With more busy threads than CPUs, a fork's wall time is mostly waiting for a CPU, a lottery
// that moves by 2x from run to run. `cpu_seconds` is therefore what forking costs in CPU time:
// the forking thread's own (fork, the library's handlers, wait) plus every child's, all its
// threads included (wait4's rusage); the workers' time is left out.
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "bench_common.h"

namespace {

std::atomic<bool> g_stop{false};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double seconds_of(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; }
std::atomic<uint64_t> g_work{0};

void* churn(void* arg) {
  bench::Rng rng(reinterpret_cast<uintptr_t>(arg));
  std::vector<void*> set(4096, nullptr);
  uint64_t done = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 1024; ++i) {
      void*& slot = set[rng.next() % set.size()];
      std::free(slot);
      slot = std::malloc(16 + rng.next() % 4080);
      bench::escape(slot);
    }
    done += 1024;
  }
  for (void* p : set) std::free(p);
  g_work.fetch_add(done);
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args a = bench::parse_args(argc, argv, 200, 8);
  bench::warm_up();
  std::vector<pthread_t> workers(a.threads);
  for (unsigned i = 0; i < a.threads; ++i)
    pthread_create(&workers[i], nullptr, churn, reinterpret_cast<void*>(static_cast<uintptr_t>(a.seed + i + 1)));
  usleep(100 * 1000);  // the working sets are full
  uint64_t checksum = 0;
  double children_cpu = 0;
  const double thread_cpu0 = thread_cpu_seconds();
  bench::Stopwatch timer;
  for (uint64_t i = 0; i < a.ops; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      void* p = std::malloc(4096);
      bench::escape(p);
      std::free(p);
      _exit(static_cast<int>(i % 7));
    }
    int status = 0;
    rusage ru{};
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status)) {
      std::fprintf(stderr, "fork_storm: fork or wait failed at %llu\n", static_cast<unsigned long long>(i));
      return 1;
    }
    checksum = checksum * 31 + static_cast<uint64_t>(WEXITSTATUS(status));
    children_cpu += seconds_of(ru.ru_utime) + seconds_of(ru.ru_stime);
  }
  bench::Timing elapsed = timer.elapsed();
  elapsed.cpu_seconds = thread_cpu_seconds() - thread_cpu0 + children_cpu;
  g_stop.store(true);
  for (pthread_t t : workers) pthread_join(t, nullptr);
  bench::report("fork_storm", a.ops, "fork", a.threads, elapsed, checksum);
  return 0;
}
