#include "tracking.h"

#include <cstdio>
#include <cstring>

#include "../hot/engine.h"
#include "../real.h"
#include "log.h"
#include "proc.h"

namespace rsr::cold {
namespace {

// Blind: anonymous memory grew by at least this much since start-up...
constexpr uint64_t kBlindGrowthBytes = 64ull << 20;
// ...while the hooks counted fewer allocations than this, and live heap below 1/8 of the growth.
constexpr uint64_t kBlindMaxAllocs = 1024;

// Anonymous memory when monitoring began: none to speak of (a process image just executed holds
// its stack and the loader's data). Counted from zero, the check reads nothing from /proc in the
// constructor, which every short process would pay for.
uint64_t g_anon_at_start = 0;
bool g_blind = false;
char g_blind_why[256];

}  // namespace

void tracking_start() {
  char why[512];
  if (!tracking_ok(why, sizeof why)) log(Level::kWarn, "tracking degraded: %s", why);
}

void tracking_tick() {
  if (g_blind || real::g_shadowed_by) return;
  const uint64_t anon = read_memory_facts().anon_bytes;
  if (anon < g_anon_at_start + kBlindGrowthBytes) return;
  const hot::Totals t = hot::read_totals();
  const uint64_t growth = anon - g_anon_at_start;
  const uint64_t live = t.alloc_bytes > t.free_bytes ? t.alloc_bytes - t.free_bytes : 0;
  if (t.allocs >= kBlindMaxAllocs || live >= growth / 8) return;
  snprintf(g_blind_why, sizeof g_blind_why,
           "the hooks counted %llu allocations while anonymous memory grew by %llu MiB",
           static_cast<unsigned long long>(t.allocs), static_cast<unsigned long long>(growth >> 20));
  g_blind = true;
  char why[512];
  tracking_ok(why, sizeof why);
  log(Level::kWarn, "tracking degraded: %s", why);
}

bool tracking_ok(char* why, size_t cap) {
  if (const char* owner = real::g_shadowed_by) {
    if (owner == real::kShadowedByProgram) {
      snprintf(why, cap,
               "malloc resolves to the program itself (an allocator linked into the executable): "
               "the hooks see almost none of its allocations; heap figures and samples are "
               "incomplete");
    } else {
      snprintf(why, cap,
               "malloc resolves to %s, which comes before librsrmem.so in LD_PRELOAD: the hooks see "
               "almost none of the allocations; put librsrmem.so first in LD_PRELOAD "
               "(rsrmemctl run does)",
               owner);
    }
    return false;
  }
  if (g_blind) {
    snprintf(why, cap,
             "%s: another allocator serves this program (linked in statically, or mapping its own "
             "memory); heap figures and samples are incomplete",
             g_blind_why);
    return false;
  }
  snprintf(why, cap, "exact counters and sampler running");
  return true;
}

}  // namespace rsr::cold
