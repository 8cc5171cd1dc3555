// Ages of the sampled live blocks of chosen call sites (survival by birth cohort): how many are
// older than a minute, ten minutes, an hour..., and in which quarter of the process's life they
// were born. A leak keeps what it allocates at every age and was born steadily; a cache holds
// nothing older than its turnover, a batch nothing older than its cycle, a start-up working set
// was born in the first quarter. One pass over the block table serves every site asked about.
//
// Thread-safety: the control thread, with g_cold.mutex held.
#pragma once

#include <cstdint>

#include "../../common/json.h"
#include "heap.h"

namespace rsr::cold {

inline constexpr int kAgeBounds = 6;  // 10 s, 1 min, 10 min, 1 h, 6 h, 1 day
inline constexpr int64_t kAgeBoundS[kAgeBounds] = {10, 60, 600, 3600, 6 * 3600, 86400};

struct AgeProfile {
  uint32_t site = 0;
  int64_t samples = 0;
  int64_t older[kAgeBounds] = {};  // live samples older than each bound
  int64_t born[4] = {};            // live samples by the quarter of the life they were born in
};

// Fills one profile per site in `sites` (in that order).
Vector<AgeProfile> site_ages(const Vector<uint32_t>& sites);
// `"age": {...}` for one site (protocol.md, check_leaks).
void write_age(json::JsonWriter<String>& w, const AgeProfile& a);

}  // namespace rsr::cold
