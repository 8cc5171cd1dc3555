#include "proc.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>

#include "fds.h"

namespace rsr::cold {

size_t read_small_file(const char* path, char* buf, size_t cap) {
  buf[0] = '\0';
  OwnedFd f = open_owned(path, O_RDONLY);
  if (!f.valid()) return 0;
  size_t n = 0;
  while (n + 1 < cap && still_ours(f)) {
    const ssize_t r = read(f.fd, buf + n, cap - 1 - n);
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  release(f);
  buf[n] = '\0';
  return n;
}

namespace {

uint64_t kib_field(const char* text, const char* name) {
  const char* p = std::strstr(text, name);
  if (!p) return 0;
  return std::strtoull(p + std::strlen(name), nullptr, 10) * 1024;
}

}  // namespace

MemoryFacts read_memory_facts() {
  char buf[4096];
  MemoryFacts f;
  if (read_small_file("/proc/self/status", buf, sizeof buf) == 0) return f;
  f.rss_bytes = kib_field(buf, "\nVmRSS:");
  f.peak_rss_bytes = kib_field(buf, "\nVmHWM:");
  f.anon_bytes = kib_field(buf, "\nRssAnon:");
  return f;
}

void read_program(char* out, size_t cap) {
  const ssize_t n = readlink("/proc/self/exe", out, cap - 1);
  out[n > 0 ? n : 0] = '\0';
}

size_t read_cmdline(char* out, size_t cap) { return read_small_file("/proc/self/cmdline", out, cap); }

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace rsr::cold
