// Whether the hooks see the program's allocations. Runs on the control side (guard held).
//
// They do not when another allocator answers the process's `malloc` before this library: one
// earlier in LD_PRELOAD, or one linked into the executable. The first case is known at start-up
// (real::g_shadowed_by); a statically linked allocator that exports nothing is only seen at run
// time, as anonymous memory that grows while the hooks count next to no allocations.
#pragma once

#include <cstddef>

namespace rsr::cold {

// In the constructor: logs a shadowing allocator once.
void tracking_start();
// Once a second (tick): the run-time check. Logs once when it finds the hooks blind.
void tracking_tick();
// True when the hooks see the program's allocations; otherwise `why` says why and what to do.
bool tracking_ok(char* why, size_t cap);

}  // namespace rsr::cold
