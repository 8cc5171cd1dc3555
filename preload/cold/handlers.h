// Control-protocol request handlers (replies documented in common/protocol.md), and the parts of
// their replies that several replies share. Control thread, with g_cold.mutex held.
#pragma once

#include <string_view>

#include "../../common/json.h"
#include "../../common/protocol.h"
#include "../hot/engine.h"
#include "heap.h"

namespace rsr::cold {

using Writer = json::JsonWriter<String>;

// ok, pid, program, service, version, protocol.
void common_fields(Writer& w);
double uptime_s();
// `"cmdline": [...]`, the process's arguments (shared with profiling.cc).
void write_cmdline(Writer& w);
// The `heap`, `sampling` and `tracker` objects of `summary` and `status`.
void write_heap(Writer& w, const hot::Totals& t);
void write_sampling(Writer& w);
void write_tracker(Writer& w);

// A call site's figures as the `summary` reply shows them, read at one moment; growth is
// against the site's baseline over `window_s` seconds.
struct SiteFigures {
  uint32_t index = 0;
  int64_t live_bytes = 0, live_blocks = 0;
  uint64_t alloc_bytes = 0;
  int64_t alloc_blocks = 0;
  uint64_t samples = 0;
  int64_t live_samples = 0;
  int64_t growth_bytes = 0;
  double growth_bytes_per_s = 0;
};
SiteFigures read_site(uint32_t index, double window_s);
struct AgeProfile;
// With `age`, the site's `age` object too (ages.h).
void write_site(Writer& w, const SiteFigures& f, const AgeProfile* age = nullptr);
// `"frames": [...]`, a site's return addresses (shared with leaks.cc).
void write_frames(Writer& w, uint32_t index);
// The same, read now (shared with leaks.cc).
void write_site(Writer& w, uint32_t index, double window_s);
// The module map, and the allocator wrappers (RSR_ALLOCATOR_WRAPPERS) that naming passes over
// (shared with leaks.cc).
void write_modules(Writer& w);
// Up to `top` sites by live bytes (those holding any) and by growth (those that grew), largest
// first. Growth is since each site's baseline (metrics), or with `rolling` since the rolling
// baseline of `summary`.
void top_sites(size_t top, Vector<uint32_t>& by_live, Vector<uint32_t>& by_growth, bool rolling = false);

// Answers one validated request (a JSON object with a "cmd" string) into `out`.
proto::Kind handle_request(std::string_view request, String& out);

}  // namespace rsr::cold
