// Facts about this process from /proc/self, read without allocating.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rsr::cold {

struct MemoryFacts {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t peak_rss_bytes = 0;  // VmHWM
  uint64_t anon_bytes = 0;      // RssAnon: what any allocator's heap ends up in
};
MemoryFacts read_memory_facts();

// The executable's path (readlink /proc/self/exe), or "" when unreadable.
void read_program(char* out, size_t cap);
// /proc/self/cmdline: NUL-separated arguments; returns the byte count written.
size_t read_cmdline(char* out, size_t cap);

// Reads up to cap-1 bytes of a small file (procfs) and NUL-terminates; returns the byte count.
// The descriptor is the library's own (fds.h) for the few microseconds it is open.
size_t read_small_file(const char* path, char* buf, size_t cap);

int64_t now_ms();       // CLOCK_REALTIME in milliseconds
int64_t monotonic_ms();  // CLOCK_MONOTONIC in milliseconds

}  // namespace rsr::cold
