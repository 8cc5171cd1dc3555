#include "ages.h"

#include <algorithm>

#include "../hot/tables.h"
#include "state.h"

namespace rsr::cold {
namespace {

struct Scan {
  const Vector<uint32_t>* sites;
  Vector<AgeProfile>* out;
  uint32_t now_ds, start_ds;
};

void count_block(uint32_t site, uint32_t born_ds, void* ctx) {
  Scan& s = *static_cast<Scan*>(ctx);
  const auto it = std::lower_bound(s.sites->begin(), s.sites->end(), site);
  if (it == s.sites->end() || *it != site) return;
  AgeProfile& a = (*s.out)[static_cast<size_t>(it - s.sites->begin())];
  ++a.samples;
  // Signed differences: the coarse clock may read a little behind the start time taken with the
  // precise one, and a block's birth may be read while it is being replaced.
  const int64_t age_s = std::max<int64_t>(0, static_cast<int64_t>(s.now_ds) - static_cast<int64_t>(born_ds)) / 10;
  for (int i = 0; i < kAgeBounds; ++i)
    if (age_s > kAgeBoundS[i]) ++a.older[i];
  const int64_t life = std::max<int64_t>(1, static_cast<int64_t>(s.now_ds) - static_cast<int64_t>(s.start_ds));
  const int64_t at = std::clamp<int64_t>(static_cast<int64_t>(born_ds) - static_cast<int64_t>(s.start_ds), 0, life - 1);
  ++a.born[at * 4 / life];
}

const char* pattern(const AgeProfile& a) {
  if (a.samples == 0) return "none";
  const auto share = [&](int q) { return static_cast<double>(a.born[q]) / static_cast<double>(a.samples); };
  if (share(0) >= 0.75) return "startup";
  if (share(3) >= 0.75) return "recent";
  if (std::min({share(0), share(1), share(2), share(3)}) >= 0.1) return "steady";
  return "mixed";
}

}  // namespace

Vector<AgeProfile> site_ages(const Vector<uint32_t>& sites) {
  Vector<uint32_t> sorted(sites);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Vector<AgeProfile> by_sorted(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) by_sorted[i].site = sorted[i];
  Scan scan{&sorted, &by_sorted, hot::coarse_ds(), static_cast<uint32_t>(g_cold.start_mono_ms / 100)};
  hot::blocks_each(count_block, &scan);
  Vector<AgeProfile> out;
  out.reserve(sites.size());
  for (uint32_t s : sites)
    out.push_back(by_sorted[static_cast<size_t>(std::lower_bound(sorted.begin(), sorted.end(), s) - sorted.begin())]);
  return out;
}

void write_age(json::JsonWriter<String>& w, const AgeProfile& a) {
  w.key("age").begin_object().field("live_samples", a.samples);
  w.key("older_than").begin_array();
  for (int i = 0; i < kAgeBounds; ++i) w.begin_object().field("s", kAgeBoundS[i]).field("samples", a.older[i]).end_object();
  w.end_array();
  w.key("born_by_quarter").begin_array();
  for (int64_t n : a.born) w.value(n);
  w.end_array();
  w.field("pattern", pattern(a)).end_object();
}

}  // namespace rsr::cold
