// A process's sampled heap profile: what the always-on sampler knows about every call site (the
// `heap_profile` request, common/protocol.md), symbolized, as pprof's profile.proto or folded
// stacks. `rsrmemctl heap-profile`, `serve`'s /debug/pprof/heap and /debug/pprof/allocs and the
// Pyroscope push all write it the same way.
//
// The values are the sampler's estimates (preload/hot/sampler.h): allocations are sampled by
// bytes, an allocation of s bytes with probability 1 - exp(-s/T) for the mean interval T, and
// each sample stands for 1/p of its bytes and blocks, so the sums are unbiased. Like Go's heap
// profile, a profile holds the four sample types alloc_objects/count, alloc_space/bytes,
// inuse_objects/count and inuse_space/bytes; the kind only chooses the default one.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "client.h"
#include "profile_model.h"
#include "symbolizer.h"

namespace rsr::ctl {

enum class HeapKind { kInuse, kAlloc };

struct HeapSite {
  uint64_t id = 0;  // the process's site number; stable for the process's life
  // Innermost first, the allocation API and the library's frames dropped; the frames belong to
  // the profile's symbolizer (one per distinct address).
  std::vector<const SymbolizedFrame*> frames;
  int64_t alloc_objects = 0, alloc_space = 0;  // since start (a delta: over the span)
  int64_t inuse_objects = 0, inuse_space = 0;  // now (a delta: their change over the span)
};

struct HeapProfile {
  int64_t pid = 0;
  std::string service, program, job;
  double time_s = 0;      // unix seconds of the reading (a delta: of its end)
  double duration_s = 0;  // since the process started (otherwise: the span)
  std::string mode;       // "sampled" or "detailed"
  uint64_t interval_bytes = 0;  // mean sampling interval; 0 in detailed mode (every allocation)
  // What the values cover: since start and now (kNow), changes over `duration_s` (kDelta), or
  // allocations over `duration_s` and what is in use now (kAllocationsSince).
  enum class Span { kNow, kDelta, kAllocationsSince } span = Span::kNow;
  std::vector<ModuleInfo> modules;
  std::vector<HeapSite> sites;  // by id; the last may be the unattributed bucket
  // What the frames point into: kept alive by every copy of the profile.
  std::shared_ptr<Symbolizer> symbolizer;
  std::shared_ptr<const SymbolizedFrame> beyond;  // the unattributed bucket's frame
};

// The `heap_profile` reply read and symbolized. Throws CtlError (kExitConnection) on a reply that
// does not have the request's shape. Symbolizing reads the symbolizer's cache (one lookup per
// distinct address): a symbolizer kept for a process makes its next profiles cheap.
HeapProfile read_heap_profile(const Json& reply, std::shared_ptr<Symbolizer> symbolizer);

// What changed from `base` to `now` (the same process, read later): allocations over the span
// and the change of what is in use. Sites whose four values did not move are left out.
HeapProfile heap_delta(const HeapProfile& base, const HeapProfile& now);

// `now` with its allocations counted since `base` (what is in use stays as it is now), as a
// continuous-profiling store wants successive pushes. Sites with nothing to show are left out.
HeapProfile allocations_since(const HeapProfile& base, const HeapProfile& now);

// The uncompressed profile.proto message; gzip() it for a file (report_export.h).
std::string encode_heap_pprof(const HeapProfile& profile, HeapKind kind);

// "root;...;leaf BYTES" lines, the kind's space (in use or allocated); sites at 0 are left out.
void write_heap_folded(const HeapProfile& profile, HeapKind kind, std::ostream& out);

}  // namespace rsr::ctl
