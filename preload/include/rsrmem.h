/* rsrmem C API: report caches, leaks and per-request memory to librsrmem.so, and read memory
 * headers. Usable from C and C++.
 *
 * Harmless without the library: a program using this header links against nothing extra. The
 * library's entry points are declared weak; every rsrmem_* function below is a static inline
 * wrapper that does nothing (returns 0 / an empty result) when the program runs without
 * LD_PRELOAD=librsrmem.so, or when monitoring is off.
 *
 * Threads: every call is safe from any thread. The cache, leak and scope calls are lock-free,
 * make no system call and never allocate from the program's heap; names are copied (at most 63
 * bytes). rsrmem_memory_headers reads /proc/self/status and must not be called from a signal
 * handler.
 *
 * The library keeps at most 64 cache names and 64 scope names (further ones count as "other")
 * and 32 leak (type, severity) pairs. Scopes nest per thread up to 8 deep; deeper ones get token
 * 0 and are not recorded. A scope measures the bytes its thread allocated between begin and end.
 * RSR_CACHE_METRICS_ENABLED=false makes the cache calls no-ops.
 */
#ifndef RSRMEM_H
#define RSRMEM_H

#include <stddef.h>
#include <stdint.h>

#define RSRMEM_API_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

/* The library's entry points, bound by symbol name; null when the library is not loaded. */
#define RSRMEM_ENTRY_(name) __asm__("rsrmem_" #name) __attribute__((weak, visibility("default")))
extern int rsrmem_entry_api_version(void) RSRMEM_ENTRY_(api_version);
extern void rsrmem_entry_cache_record(const char* cache, int hit) RSRMEM_ENTRY_(cache_record);
extern void rsrmem_entry_leak_record(const char* type, const char* severity) RSRMEM_ENTRY_(leak_record);
extern uint64_t rsrmem_entry_scope_begin(const char* name) RSRMEM_ENTRY_(scope_begin);
extern void rsrmem_entry_scope_end(uint64_t token) RSRMEM_ENTRY_(scope_end);
extern size_t rsrmem_entry_memory_headers(char* buf, size_t len) RSRMEM_ENTRY_(memory_headers);
#undef RSRMEM_ENTRY_

/* The wrappers that share an entry point's name get their own local symbol name. */
static inline int rsrmem_api_version(void) __asm__("rsrmem_inline_api_version");
static inline uint64_t rsrmem_scope_begin(const char* name) __asm__("rsrmem_inline_scope_begin");
static inline void rsrmem_scope_end(uint64_t token) __asm__("rsrmem_inline_scope_end");
static inline size_t rsrmem_memory_headers(char* buf, size_t len) __asm__("rsrmem_inline_memory_headers");

/* True when librsrmem.so is loaded and its API answers. */
static inline int rsrmem_present(void) {
  return rsrmem_entry_api_version ? rsrmem_entry_api_version() >= 1 : 0;
}

/* RSRMEM_API_VERSION of the loaded library, 0 without it. */
static inline int rsrmem_api_version(void) {
  return rsrmem_entry_api_version ? rsrmem_entry_api_version() : 0;
}

/* One lookup of `cache` that found its entry (hit) or not (miss). */
static inline void rsrmem_cache_hit(const char* cache) {
  if (rsrmem_entry_cache_record) rsrmem_entry_cache_record(cache, 1);
}
static inline void rsrmem_cache_miss(const char* cache) {
  if (rsrmem_entry_cache_record) rsrmem_entry_cache_record(cache, 0);
}
/* `op` is "hit" or "miss"; anything else is ignored. */
static inline void rsrmem_record_cache_operation(const char* op, const char* cache) {
  if (!op || !rsrmem_entry_cache_record) return;
  if (op[0] == 'h' && op[1] == 'i' && op[2] == 't' && op[3] == '\0') rsrmem_entry_cache_record(cache, 1);
  else if (op[0] == 'm' && op[1] == 'i' && op[2] == 's' && op[3] == 's' && op[4] == '\0')
    rsrmem_entry_cache_record(cache, 0);
}

/* A leak the program detected itself; counted beside the library's own indicators by type and
 * severity (free-form, e.g. "django_model", "medium"; severities are kept in upper case). */
static inline void rsrmem_record_memory_leak(const char* type, const char* severity) {
  if (rsrmem_entry_leak_record) rsrmem_entry_leak_record(type, severity);
}

/* Opens a scope (a request, a job) on this thread; pass the token to rsrmem_scope_end on the
 * same thread. Token 0: not tracked (ending it does nothing). */
static inline uint64_t rsrmem_scope_begin(const char* name) {
  return rsrmem_entry_scope_begin ? rsrmem_entry_scope_begin(name) : 0;
}
/* Ends the scope (and any still open inside it, unrecorded). */
static inline void rsrmem_scope_end(uint64_t token) {
  if (token && rsrmem_entry_scope_end) rsrmem_entry_scope_end(token);
}

/* Writes HTTP-style memory headers into buf, e.g. with the default prefix
 *   X-RSR-Memory-Usage: <rss bytes>\r\n
 *   X-RSR-Memory-Peak: <peak rss bytes>\r\n
 *   X-RSR-Memory-Heap: <live heap bytes>\r\n
 *   X-RSR-Memory-Scope-Allocated: <bytes>\r\n   (inside a scope on this thread)
 * (prefix: RSR_MEMORY_HEADER_PREFIX). Like snprintf: returns the length the text needs, writes
 * nothing past len and NUL-terminates when len > 0. Without the library: returns 0 and writes
 * "" when len > 0. */
static inline size_t rsrmem_memory_headers(char* buf, size_t len) {
  if (rsrmem_entry_memory_headers) return rsrmem_entry_memory_headers(buf, len);
  if (buf && len > 0) buf[0] = '\0';
  return 0;
}

#ifdef __cplusplus
} /* extern "C" */

#if __cplusplus >= 201703L
#include <string>
#include <string_view>

namespace rsrmem {

inline bool present() noexcept { return rsrmem_present() != 0; }
inline void cache_hit(const char* cache) noexcept { rsrmem_cache_hit(cache); }
inline void cache_miss(const char* cache) noexcept { rsrmem_cache_miss(cache); }
/* `op` is "hit" or "miss"; anything else is ignored. */
inline void record_cache_operation(std::string_view op, const char* cache) noexcept {
  if (op == "hit") rsrmem_cache_hit(cache);
  else if (op == "miss") rsrmem_cache_miss(cache);
}
inline void record_memory_leak(const char* type, const char* severity) noexcept {
  rsrmem_record_memory_leak(type, severity);
}
/* The memory headers as a string ("" without the library). */
inline std::string memory_headers() {
  char buf[1024];
  const size_t n = rsrmem_memory_headers(buf, sizeof buf);
  if (n < sizeof buf) return std::string(buf, n);
  std::string s(n + 1, '\0');
  const size_t m = rsrmem_memory_headers(&s[0], s.size());
  s.resize(m < s.size() ? m : s.size() - 1);
  return s;
}

/* A scope for the lifetime of the object, on the thread that made it. */
class Scope {
 public:
  explicit Scope(const char* name) noexcept : token_(rsrmem_scope_begin(name)) {}
  ~Scope() { rsrmem_scope_end(token_); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  bool tracked() const noexcept { return token_ != 0; }

 private:
  uint64_t token_;
};

}  // namespace rsrmem
#endif
#endif /* __cplusplus */

#endif /* RSRMEM_H */
