// Shared scaffolding of the benchmark programs that scripts/bench runs with and without the
// preload: argument parsing, a cheap deterministic RNG, an optimisation barrier and the one
// machine-readable line each program prints at the end:
//
//   RESULT name=<program> ops=<N> unit=<what one op is> threads=<T> seconds=<wall>
//          ns_per_op=<wall / ops> cpu_seconds=<process CPU time> checksum=<hex>
//
// `seconds` is the wall time of the measured loop only (process start-up, the preload's own
// initialisation and a tool's set-up on its first hooked call, see warm_up(), are outside it),
// so ratios between runs compare the cost the allocation hooks add to the service's work.
// `cpu_seconds` is the CPU time all the process's threads (the preload's own included) spent
// meanwhile: on a shared machine it is not inflated by time spent waiting for a CPU. `checksum`
// depends on every op, so the compiler cannot drop the work; it is the same for the same
// arguments, with or without a preload.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <time.h>

namespace bench {

struct Args {
  uint64_t ops;
  unsigned threads;
  uint64_t seed = 1;
};

[[noreturn]] inline void usage(const char* prog, const char* why) {
  std::fprintf(stderr, "%s: %s\nusage: %s [--ops N] [--threads N] [--seed N]\n", prog, why, prog);
  std::exit(2);
}

inline uint64_t parse_u64(const char* prog, std::string_view flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    std::fprintf(stderr, "%s: %.*s expects a non-negative integer, got '%s'\n", prog,
                 static_cast<int>(flag.size()), flag.data(), text);
    std::exit(2);
  }
  return v;
}

// default_threads 0: a single-threaded program, which refuses --threads.
inline Args parse_args(int argc, char** argv, uint64_t default_ops, unsigned default_threads = 0) {
  Args a{default_ops, default_threads == 0 ? 1 : default_threads};
  const char* prog = argv[0];
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") usage(prog, "see tests/bench/README.md");
    if (i + 1 >= argc) usage(prog, "missing value");
    const char* value = argv[++i];
    if (flag == "--ops") a.ops = parse_u64(prog, flag, value);
    else if (flag == "--threads" && default_threads != 0)
      a.threads = static_cast<unsigned>(parse_u64(prog, flag, value));
    else if (flag == "--seed") a.seed = parse_u64(prog, flag, value);
    else usage(prog, "unknown option");
  }
  if (a.ops == 0) usage(prog, "--ops must be at least 1");
  if (a.threads == 0 || a.threads > 256) usage(prog, "--threads must be 1..256");
  return a;
}

// xorshift64*: a few cycles per draw, deterministic per seed, good enough to pick sizes and slots.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
    if (s_ == 0) s_ = 1;
  }
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [lo, hi], by multiply-shift (no division on the hot path).
  uint32_t range(uint32_t lo, uint32_t hi) {
    uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<uint32_t>(((next() >> 32) * span) >> 32);
  }

 private:
  uint64_t s_;
};

// Tells the compiler the pointed-to memory may be read or written by someone else, so a
// malloc/free pair (which GCC otherwise deletes) and the stores into the block stay.
inline void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

// A few allocations through every entry point the programs use, before the clock starts: a tool
// that initialises on its first hooked call (heaptrack does) must not have that counted as the
// program's work.
inline void warm_up() {
  for (int i = 0; i < 1000; ++i) {
    void* p = std::malloc(16 + i);
    escape(p);
    std::free(p);
    p = std::realloc(nullptr, 16 + i);
    escape(p);
    std::free(p);
    char* q = new char[16 + i];
    escape(q);
    delete[] q;
    p = ::operator new(16 + i);
    escape(p);
    ::operator delete(p, 16 + i);
  }
  // BENCH_WAIT=1: print "READY" and wait for a line on stdin before the clock starts, so a
  // profiling capture can be started in the process first (scripts/bench's capture variant).
  if (const char* wait = std::getenv("BENCH_WAIT"); wait && wait[0] == '1') {
    std::printf("READY\n");
    std::fflush(stdout);
    char line[16];
    if (!std::fgets(line, sizeof line, stdin)) std::exit(3);
  }
}

inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double seconds;      // wall
  double cpu_seconds;  // every thread of the process
};

// Wall and process CPU time since construction.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()), cpu_start_(process_cpu_seconds()) {}
  Timing elapsed() const {
    const double cpu = process_cpu_seconds() - cpu_start_;
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), cpu};
  }

 private:
  std::chrono::steady_clock::time_point start_;
  double cpu_start_;
};

inline void report(const char* name, uint64_t ops, const char* unit, unsigned threads, Timing t,
                   uint64_t checksum) {
  std::printf("RESULT name=%s ops=%llu unit=%s threads=%u seconds=%.6f ns_per_op=%.3f "
              "cpu_seconds=%.6f checksum=%016llx\n",
              name, static_cast<unsigned long long>(ops), unit, threads, t.seconds,
              t.seconds * 1e9 / static_cast<double>(ops), t.cpu_seconds,
              static_cast<unsigned long long>(checksum));
  std::fflush(stdout);
}

}  // namespace bench
