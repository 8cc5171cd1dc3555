// Leak detection while the service runs (SPEC section 4; the method is described beside
// `check_leaks` in common/protocol.md).
//
// Probes read the exact live heap, RSS and every sizeable call site's estimate a few times per
// check interval; a level is the lowest of the last probes, so temporary bursts do not count as
// growth. Checks record levels as history and judge four indicators over a window of checks:
// memory_growth, site_growth, accumulation and high_memory. Running-service semantics: memory a
// live container keeps growing is a leak here, though it would be freed at exit.
//
// Thread-safety: every function runs on the control thread with g_cold.mutex held.
#pragma once

#include <cstdint>

#include "../../common/json.h"
#include "heap.h"

namespace rsr::cold {

void leaks_init();
// Monotonic ms at which leaks_run_due has work next (INT64_MAX when detection is off).
int64_t leaks_next_due_ms();
// Runs the probe and/or background check that are due at `now_mono_ms`.
void leaks_run_due(int64_t now_mono_ms);

// The body of a `check_leaks` reply (judged now, history and counts untouched).
void write_leak_report(json::JsonWriter<String>& w);
// The `leaks` object of `status` and the detail of the health component.
void write_leak_status(json::JsonWriter<String>& w);
uint64_t leak_checks();
// Every background-check count by type and severity name (zeros too), for the `metrics` reply.
void leak_detected_each(void (*fn)(const char* type, const char* severity, uint64_t n, void* ctx), void* ctx);
// True once leak detection is on and its state exists.
bool leaks_running();

}  // namespace rsr::cold
