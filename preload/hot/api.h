// What the public C API (include/rsrmem.h, entry points in api.cpp) records. Runs on the
// service's threads, possibly from signal handlers: lock-free, never allocates, never blocks.
//
// Names (caches, scopes, leak type + severity) are copied into fixed tables on first use:
// a slot is claimed with one compare-and-swap of its hash, then its text is written and
// published. A thread that finds a slot of the same hash still being written claims another
// one, so the same name may own two slots for a moment; readers merge slots by name. When a
// table is full, further names count in its last slot ("other").
//
// Scopes: each thread keeps a stack of open scopes (up to kScopeDepth) in initial-exec TLS,
// remembering its own exact counters (engine.h) at begin; the end records the bytes allocated
// in between, and allocated minus freed as retained (floored at 0).
//
// Cost: a cache record is one table probe (hash of the name, one compare of the text) and one
// relaxed fetch_add; a scope end adds one relaxed fetch_add per histogram figure.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#pragma GCC visibility push(hidden)

namespace rsr::hot {

inline constexpr int kApiNameBytes = 64;  // names keep at most 63 bytes
inline constexpr int kApiNames = 64;      // caches and scopes: named slots, then "other"
inline constexpr int kApiLeakKinds = 32;  // leak (type, severity) pairs, then "other"
inline constexpr int kScopeDepth = 8;

struct ApiName {
  std::atomic<uint64_t> hash;    // 0: free
  std::atomic<uint32_t> ready;   // 1 once text is written
  char text[2][kApiNameBytes]{};  // name; for leaks type and severity
};

struct CacheCounts {
  std::atomic<uint64_t> hits, misses;
};

// Histogram of MB (2^20 bytes) allocated per scope; bounds as in the `metrics` reply.
inline constexpr double kScopeBoundsMb[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000};
inline constexpr int kScopeBuckets = sizeof kScopeBoundsMb / sizeof kScopeBoundsMb[0] + 1;

struct ScopeStats {
  std::atomic<uint64_t> counts[kScopeBuckets];
  std::atomic<uint64_t> count, sum_bytes, retained_bytes;
};

// Set at start-up; apart from the tables, which a process that never calls the API never touches.
struct ApiSwitches {
  std::atomic<bool> caches_on{false};  // RSR_CACHE_METRICS_ENABLED
  std::atomic<bool> on{false};         // the engine is active: record anything at all
};
extern ApiSwitches g_api_switches;

struct ApiTables {
  ApiName cache_names[kApiNames + 1];
  CacheCounts caches[kApiNames + 1];
  ApiName scope_names[kApiNames + 1];
  ScopeStats scopes[kApiNames + 1];
  ApiName leak_names[kApiLeakKinds + 1];
  std::atomic<uint64_t> leaks[kApiLeakKinds + 1];
};
extern ApiTables g_api;

// Each returns the slot of its name (the last one when the table is full).
int api_cache_record(const char* cache, bool hit);
int api_leak_record(const char* type, const char* severity);  // severity kept in upper case

// Returns a token for api_scope_end, 0 when the scope is not tracked (API off, too deep).
uint64_t api_scope_begin(const char* name);
// True when `token` was an open scope of this thread (and is now ended).
bool api_scope_end(uint64_t token);
// Bytes this thread allocated since its innermost open scope began; false outside any scope.
bool api_scope_allocated(uint64_t* bytes);

// The text of slot `i` of a table with `named` named slots, null while the slot is unused;
// "other" for the overflow slot. `part` 1 is a leak's severity.
const char* api_name(const ApiName* table, int named, int i, int part = 0);

}  // namespace rsr::hot

#pragma GCC visibility pop
