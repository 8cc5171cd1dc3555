// The module map: every object mapped into the process since start (path, build-id, load bias,
// address range), so raw return addresses can be symbolized later, elsewhere, by rsrmemctl.
// Modules that were dlclose()d stay listed (loaded = false): their samples remain.
// Thread-safety: call with the control state's mutex held.
#pragma once

#include <cstdint>

#include "heap.h"

namespace rsr::cold {

struct Module {
  String path;
  String build_id;  // lower-case hex, may be empty
  uintptr_t base = 0;
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool loaded = true;
};

// Brings the map up to date when objects were loaded or unloaded since the last call; cheap
// otherwise (one dl_iterate_phdr pass reading two counters).
void refresh_modules();
const Vector<Module>& modules();

// Address range [lo, hi) of the module that contains `addr` (used to find librsrmem.so itself).
bool module_range_of(const void* addr, uintptr_t* lo, uintptr_t* hi);

}  // namespace rsr::cold
