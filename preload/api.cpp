// The public C API's entry points (declared weak in include/rsrmem.h, which wraps them). Besides
// the allocation functions (hooks.cpp) these are the only symbols the library exports. Each
// keeps errno; the recording itself is in hot/api.h.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cold/proc.h"
#include "cold/profiling.h"
#include "cold/state.h"
#include "hot/api.h"
#include "hot/engine.h"

#define RSR_API extern "C" __attribute__((visibility("default")))

namespace {

struct ErrnoKeeper {
  int saved = errno;
  ~ErrnoKeeper() { errno = saved; }
};

bool active() { return rsr::hot::g_engine.mode.load(std::memory_order_acquire) == rsr::hot::kActive; }

}  // namespace

RSR_API int rsrmem_api_version(void) { return 1; }

RSR_API void rsrmem_cache_record(const char* cache, int hit) {
  ErrnoKeeper keep;
  rsr::hot::api_cache_record(cache, hit != 0);
}

RSR_API void rsrmem_leak_record(const char* type, const char* severity) {
  ErrnoKeeper keep;
  rsr::hot::api_leak_record(type, severity);
}

RSR_API uint64_t rsrmem_scope_begin(const char* name) {
  ErrnoKeeper keep;
  const uint64_t token = rsr::hot::api_scope_begin(name);
  if (token != 0) rsr::cold::profiling_scope_begin(name, token);
  return token;
}

RSR_API void rsrmem_scope_end(uint64_t token) {
  ErrnoKeeper keep;
  if (rsr::hot::api_scope_end(token)) rsr::cold::profiling_scope_end(token);
}

// Formatted on the stack (the prefix is at most kNameMax bytes), then copied like snprintf.
RSR_API size_t rsrmem_memory_headers(char* buf, size_t len) {
  ErrnoKeeper keep;
  char text[1024];
  int n = 0;
  if (active()) {
    const char* prefix = rsr::cold::g_cold.config.memory_header_prefix;
    const rsr::cold::MemoryFacts mem = rsr::cold::read_memory_facts();
    const rsr::hot::Totals t = rsr::hot::read_totals();
    const uint64_t heap = t.alloc_bytes > t.free_bytes ? t.alloc_bytes - t.free_bytes : 0;
    n = snprintf(text, sizeof text, "%s-Usage: %llu\r\n%s-Peak: %llu\r\n%s-Heap: %llu\r\n", prefix,
                 static_cast<unsigned long long>(mem.rss_bytes), prefix,
                 static_cast<unsigned long long>(mem.peak_rss_bytes), prefix, static_cast<unsigned long long>(heap));
    uint64_t scope = 0;
    if (n > 0 && rsr::hot::api_scope_allocated(&scope))
      n += snprintf(text + n, sizeof text - static_cast<size_t>(n), "%s-Scope-Allocated: %llu\r\n", prefix,
                    static_cast<unsigned long long>(scope));
    if (n < 0) n = 0;
  }
  const size_t need = static_cast<size_t>(n);
  if (buf && len > 0) {
    const size_t copy = need < len ? need : len - 1;
    std::memcpy(buf, text, copy);
    buf[copy] = '\0';
  }
  return need;
}
