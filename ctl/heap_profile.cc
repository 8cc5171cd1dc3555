#include "heap_profile.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "commands.h"
#include "errors.h"
#include "metrics_exposition.h"
#include "report_export.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

int64_t integer(const Json& object, const char* key) {
  return static_cast<int64_t>(std::llround(num(object, key)));
}

void read_values(const Json& site, HeapSite& out) {
  out.alloc_objects = integer(site, "alloc_blocks");
  out.alloc_space = integer(site, "alloc_bytes");
  out.inuse_objects = integer(site, "live_blocks");
  out.inuse_space = integer(site, "live_bytes");
}

bool moved(const HeapSite& s) {
  return s.alloc_objects != 0 || s.alloc_space != 0 || s.inuse_objects != 0 || s.inuse_space != 0;
}

}  // namespace

HeapProfile read_heap_profile(const Json& reply, std::shared_ptr<Symbolizer> symbolizer) {
  const Json& sites = member(reply, "sites");
  const Json& addresses = member(reply, "addresses");
  if (!sites.is_array() || !addresses.is_array())
    throw CtlError(kExitConnection, "the process's heap_profile reply has no sites or addresses "
                                    "(a library older than this rsrmemctl?)");
  HeapProfile p;
  p.pid = integer(reply, "pid");
  p.service = str(reply, "service");
  p.program = str(reply, "program");
  p.job = job_of(reply);
  p.time_s = num(reply, "time_ms") / 1000.0;
  p.duration_s = num(reply, "uptime_s");
  const Json& sampling = member(reply, "sampling");
  p.mode = str(sampling, "mode", "sampled");
  p.interval_bytes = static_cast<uint64_t>(num(sampling, "interval_bytes"));
  p.modules = modules_of(reply);

  std::vector<uint64_t> table;
  table.reserve(addresses.size());
  for (const Json& a : addresses) table.push_back(parse_address(a));
  std::vector<uint64_t> stack;
  for (const Json& site : sites) {
    stack.clear();
    for (const Json& k : member(site, "frames")) {
      const auto at = static_cast<size_t>(k.is_number_unsigned() ? k.get<uint64_t>() : table.size());
      if (at >= table.size())
        throw CtlError(kExitConnection, "the process's heap_profile reply names a frame beyond "
                                        "its address table");
      stack.push_back(table[at]);
    }
    HeapSite s;
    s.id = static_cast<uint64_t>(integer(site, "id"));
    s.frames = trimmed_stack(stack, *symbolizer);
    read_values(site, s);
    p.sites.push_back(std::move(s));
  }
  std::sort(p.sites.begin(), p.sites.end(),
            [](const HeapSite& a, const HeapSite& b) { return a.id < b.id; });
  HeapSite beyond;
  beyond.id = UINT64_MAX;
  read_values(member(reply, "unattributed"), beyond);
  if (moved(beyond)) {
    auto frame = std::make_shared<SymbolizedFrame>();
    frame->function = "[call sites beyond RSR_MAX_SITES]";
    beyond.frames.push_back(frame.get());
    p.beyond = std::move(frame);
    p.sites.push_back(std::move(beyond));
  }
  p.symbolizer = std::move(symbolizer);
  return p;
}

namespace {

// `now` less `base`, site by site: the allocations, and with `inuse` what is in use too.
HeapProfile minus(const HeapProfile& base, const HeapProfile& now, HeapProfile::Span span,
                  bool inuse) {
  HeapProfile d = now;
  d.span = span;
  d.duration_s = std::max(0.0, now.time_s - base.time_s);
  d.sites.clear();
  std::map<uint64_t, const HeapSite*> before;
  for (const HeapSite& s : base.sites) before.emplace(s.id, &s);
  for (const HeapSite& s : now.sites) {
    HeapSite c = s;
    if (auto it = before.find(s.id); it != before.end()) {
      c.alloc_objects -= it->second->alloc_objects;
      c.alloc_space -= it->second->alloc_space;
      if (inuse) {
        c.inuse_objects -= it->second->inuse_objects;
        c.inuse_space -= it->second->inuse_space;
      }
    }
    if (moved(c)) d.sites.push_back(std::move(c));
  }
  return d;
}

}  // namespace

HeapProfile heap_delta(const HeapProfile& base, const HeapProfile& now) {
  return minus(base, now, HeapProfile::Span::kDelta, /*inuse=*/true);
}

HeapProfile allocations_since(const HeapProfile& base, const HeapProfile& now) {
  return minus(base, now, HeapProfile::Span::kAllocationsSince, /*inuse=*/false);
}

std::string encode_heap_pprof(const HeapProfile& p, HeapKind kind) {
  PprofDocument doc(p.modules);
  doc.sample_types = {{"alloc_objects", "count"},
                      {"alloc_space", "bytes"},
                      {"inuse_objects", "count"},
                      {"inuse_space", "bytes"}};
  doc.default_sample_type = kind == HeapKind::kInuse ? "inuse_space" : "alloc_space";
  for (const HeapSite& s : p.sites)
    doc.samples.push_back({nullptr,
                           {s.alloc_objects, s.alloc_space, s.inuse_objects, s.inuse_space},
                           &s.frames});
  doc.labels = {{"job", p.job}, {"service", p.service}, {"pid", std::to_string(p.pid)}};
  const bool detailed = p.interval_bytes == 0;
  const bool delta = p.span == HeapProfile::Span::kDelta;
  doc.comments.push_back(std::string("rsrmem heap profile") + (delta ? " (delta)" : "") +
                         " of " + p.program + " (pid " + std::to_string(p.pid) + ")");
  doc.comments.push_back(
      detailed ? std::string("sampling: every allocation (RSR_MEMORY_DETAILED_TRACKING): exact")
               : "sampling: Poisson over allocated bytes, mean interval " +
                     std::to_string(p.interval_bytes) +
                     " bytes (RSR_SAMPLE_INTERVAL_BYTES); an allocation of s bytes is sampled "
                     "with probability 1-exp(-s/interval) and counts 1/p: values are unbiased "
                     "estimates");
  switch (p.span) {
    case HeapProfile::Span::kNow:
      doc.comments.push_back("alloc_*: since the process started; inuse_*: live now");
      break;
    case HeapProfile::Span::kDelta:
      doc.comments.push_back("alloc_*: allocations over the profile's duration; inuse_*: their "
                             "change over it");
      break;
    case HeapProfile::Span::kAllocationsSince:
      doc.comments.push_back("alloc_*: allocations over the profile's duration; inuse_*: live now");
      break;
  }
  doc.time_s = p.time_s;
  doc.duration_s = p.duration_s;
  doc.period = detailed ? 1 : static_cast<int64_t>(p.interval_bytes);
  return encode_pprof(doc);
}

void write_heap_folded(const HeapProfile& p, HeapKind kind, std::ostream& out) {
  std::map<std::string, int64_t> lines;
  for (const HeapSite& s : p.sites) {
    const int64_t value = kind == HeapKind::kInuse ? s.inuse_space : s.alloc_space;
    if (value != 0) lines[folded_stack(s.frames)] += value;
  }
  for (const auto& [line, value] : lines)
    if (value != 0) out << line << ' ' << value << '\n';
}

}  // namespace rsr::ctl
