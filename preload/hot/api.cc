// Recording behind the public C API (see api.h). Runs on the service's threads: no allocation,
// no lock, no system call.
#include "api.h"

#include "engine.h"

namespace rsr::hot {

constinit ApiSwitches g_api_switches;
RSR_LARGE_BSS constinit ApiTables g_api;

namespace {

struct OpenScope {
  uint64_t token;
  uint64_t alloc_at, free_at;  // the thread's exact counters at begin (usable bytes)
  int slot;
};

// Trivially constructible and destructible: it lives in every thread's TLS.
struct ScopeStack {
  OpenScope open[kScopeDepth];
  uint32_t depth;
  uint32_t seq;
};
__thread ScopeStack t_scopes __attribute__((tls_model("initial-exec")));

constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a over the bytes a name keeps, then a separator.
uint64_t mix(uint64_t h, const char* s) {
  for (int i = 0; i < kApiNameBytes - 1 && s[i]; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * kFnvPrime;
  return (h ^ 0xff) * kFnvPrime;
}

bool same(const char* stored, const char* s) {
  int i = 0;
  for (; i < kApiNameBytes - 1 && s[i]; ++i)
    if (stored[i] != s[i]) return false;
  return stored[i] == '\0';
}

void copy(char* dst, const char* s) {
  int i = 0;
  for (; i < kApiNameBytes - 1 && s[i]; ++i) dst[i] = s[i];
  dst[i] = '\0';
}

// The slot of (a, b) among `named` slots, claimed when new; `named` (overflow) when full.
int intern(ApiName* table, int named, const char* a, const char* b) {
  uint64_t h = mix(mix(0xcbf29ce484222325ULL, a), b);
  if (h == 0) h = 1;
  const int start = static_cast<int>(h % static_cast<uint64_t>(named));
  for (int k = 0; k < named; ++k) {
    const int i = (start + k) % named;
    ApiName& s = table[i];
    uint64_t seen = s.hash.load(std::memory_order_acquire);
    if (seen == 0 && s.hash.compare_exchange_strong(seen, h, std::memory_order_acq_rel)) {
      copy(s.text[0], a);
      copy(s.text[1], b);
      s.ready.store(1, std::memory_order_release);
      return i;
    }
    // A slot of the same hash still being written is passed over (see api.h).
    if (seen == h && s.ready.load(std::memory_order_acquire) && same(s.text[0], a) && same(s.text[1], b)) return i;
  }
  return named;
}

const char* or_unknown(const char* s) { return s ? s : "unknown"; }

void observe(ScopeStats& s, uint64_t allocated, uint64_t retained) {
  const double mb = static_cast<double>(allocated) / (1024.0 * 1024.0);
  int b = 0;
  while (b < kScopeBuckets - 1 && mb > kScopeBoundsMb[b]) ++b;
  s.counts[b].fetch_add(1, std::memory_order_relaxed);
  s.sum_bytes.fetch_add(allocated, std::memory_order_relaxed);
  s.retained_bytes.fetch_add(retained, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
}

uint64_t since(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

}  // namespace

int api_cache_record(const char* cache, bool hit) {
  if (!g_api_switches.caches_on.load(std::memory_order_relaxed)) return -1;
  const int i = intern(g_api.cache_names, kApiNames, or_unknown(cache), "");
  CacheCounts& c = g_api.caches[i];
  (hit ? c.hits : c.misses).fetch_add(1, std::memory_order_relaxed);
  return i;
}

int api_leak_record(const char* type, const char* severity) {
  if (!g_api_switches.on.load(std::memory_order_relaxed)) return -1;
  char upper[kApiNameBytes];
  const char* s = or_unknown(severity);
  int n = 0;
  for (; n < kApiNameBytes - 1 && s[n]; ++n) upper[n] = s[n] >= 'a' && s[n] <= 'z' ? static_cast<char>(s[n] - 32) : s[n];
  upper[n] = '\0';
  const int i = intern(g_api.leak_names, kApiLeakKinds, or_unknown(type), upper);
  g_api.leaks[i].fetch_add(1, std::memory_order_relaxed);
  return i;
}

uint64_t api_scope_begin(const char* name) {
  if (!g_api_switches.on.load(std::memory_order_relaxed)) return 0;
  ScopeStack& st = t_scopes;
  if (st.depth >= kScopeDepth) return 0;
  const ThreadState& t = t_state;
  OpenScope& o = st.open[st.depth];
  o.slot = intern(g_api.scope_names, kApiNames, or_unknown(name), "");
  o.alloc_at = usable_of(t.alloc_bytes, t.allocs);
  o.free_at = usable_of(t.free_bytes, t.frees);
  o.token = (static_cast<uint64_t>(++st.seq) << 4) | (st.depth + 1);
  ++st.depth;
  return o.token;
}

bool api_scope_end(uint64_t token) {
  ScopeStack& st = t_scopes;
  const uint64_t level = (token & 15) - 1;  // token 0 gives a level no stack reaches
  if (level >= st.depth || st.open[level].token != token) return false;
  const OpenScope o = st.open[level];
  st.depth = static_cast<uint32_t>(level);  // scopes left open inside it end unrecorded
  const ThreadState& t = t_state;
  const uint64_t allocated = since(usable_of(t.alloc_bytes, t.allocs), o.alloc_at);
  const uint64_t freed = since(usable_of(t.free_bytes, t.frees), o.free_at);
  observe(g_api.scopes[o.slot], allocated, since(allocated, freed));
  return true;
}

bool api_scope_allocated(uint64_t* bytes) {
  const ScopeStack& st = t_scopes;
  if (st.depth == 0) return false;
  *bytes = since(usable_of(t_state.alloc_bytes, t_state.allocs), st.open[st.depth - 1].alloc_at);
  return true;
}

const char* api_name(const ApiName* table, int named, int i, int part) {
  if (i == named) return part == 0 ? "other" : "OTHER";
  if (!table[i].ready.load(std::memory_order_acquire)) return nullptr;
  return table[i].text[part];
}

}  // namespace rsr::hot
