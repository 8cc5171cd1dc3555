// Profiling captures, the control side (SPEC section 5; file format in common/capture.md; the
// recording on the service's threads in hot/capture.h).
//
// One background capture at a time, started and stopped by control requests; scope captures
// (C API) start on the service's thread that opens the scope and are written when it ends. One
// writer thread (a guarded engine thread: whatever it allocates, zstd included, goes to the
// private heap) turns event buffers into zstd frames, writes and renames the files, and ends a
// capture at its duration, on request, at the size cap, on a write error or at exit.
//
// Thread-safety: the handlers run on the control thread with g_cold.mutex held; the profiler's
// own state has its own mutex, taken after g_cold.mutex, never before. Scope begin/end run on the
// service's threads and take no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "handlers.h"

namespace rsr::cold {

// Start-up (after the engine turned active) and in a forked child: the writer thread, when
// RSR_PROFILING_ENABLED=true. The child has no capture running.
void profiling_start_writer();
void profiling_fork_child();
// At exit: a running capture ends with reason "exit" (waits a bounded time for its END).
void profiling_at_exit();

// Control requests. Each returns false with a message in `err` (a refusal), or writes its reply
// fields into `w` (after the common fields, which the caller wrote).
bool profiling_start(double duration_s, Writer& w, char* err, size_t cap);
// Without an id: lists active captures. With one: stops it and waits (at most ~5 s) for its END.
// Releases g_cold.mutex while it waits.
bool profiling_stop(std::string_view id, bool has_id, Writer& w, char* err, size_t cap);
// `profilers` array of status, and the number of active captures.
void write_profilers(Writer& w);
int profiling_active();

// C API scopes (service threads, no lock). Begin decides with RSR_PROFILING_REQUEST_PROBABILITY
// whether the scope of `token` is captured; end closes the capture when `token` (which ended) is
// the captured scope or encloses it.
void profiling_scope_begin(const char* name, uint64_t token);
void profiling_scope_end(uint64_t token);

}  // namespace rsr::cold
