// The `metrics` reply (common/protocol.md) and the periodic work behind it:
// - the site snapshot: top_live and top_growth, read every RSR_MEMORY_METRICS_UPDATE_INTERVAL
//   seconds and by `update_metrics` together with the reset of the growth baseline (one
//   mechanism: a snapshot's growth is the growth since the previous one), never per request;
// - the publication of cache counts recorded through the C API (hot/api.h), every
//   RSR_CACHE_METRICS_UPDATE_FREQUENCY seconds and by `update_metrics`.
// Everything else in the reply is read when it is asked for.
//
// Thread-safety: control thread (or start-up, before it exists), with g_cold.mutex held.
#pragma once

#include <cstdint>

#include "handlers.h"

namespace rsr::cold {

// Takes the site snapshot and resets every site's growth baseline. Returns the sites seen.
uint64_t refresh_sites();
// At start-up: the growth baseline is the process's start and the first snapshot is one update
// interval away; until then `metrics` reads the sites at each request.
void metrics_start();
// Copies the live cache counters into the published ones.
void publish_caches();
// The same at start-up, when nothing is recorded yet: an empty publication, stamped now (without
// reading the name tables, pages the process may never touch).
void publish_no_caches();
// The snapshot and the publication, when due at `now_mono_ms`.
void metrics_tick(int64_t now_mono_ms);

// The body of a `metrics` reply.
void write_metrics(Writer& w);

}  // namespace rsr::cold
