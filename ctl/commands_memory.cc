// `rsrmemctl memory-summary`: heap and RSS figures, then the top call sites by live bytes and by
// growth, with their stacks symbolized here (the process only sends addresses and its modules).
#include <cstdlib>
#include <sstream>

#include "commands.h"
#include "errors.h"
#include "format.h"
#include "symbolizer.h"

namespace rsr::ctl {
namespace {

uint64_t parse_address(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (!v.is_string()) return 0;
  const std::string s = v.get<std::string>();
  return std::strtoull(s.c_str(), nullptr, 16);  // accepts the "0x" prefix
}

std::string hex(uint64_t v) {
  std::ostringstream out;
  out << "0x" << std::hex << v;
  return out.str();
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<ModuleInfo> modules_of(const Json& reply) {
  std::vector<ModuleInfo> out;
  for (const Json& m : member(reply, "modules")) {
    if (!m.is_object()) continue;
    ModuleInfo info;
    info.path = str(m, "path");
    info.build_id = lowercase(str(m, "build_id"));
    info.base = parse_address(member(m, "base"));
    info.start = parse_address(member(m, "start"));
    info.end = parse_address(member(m, "end"));
    info.loaded = !m.contains("loaded") || !m["loaded"].is_boolean() || m["loaded"].get<bool>();
    out.push_back(std::move(info));
  }
  return out;
}

Json frame_json(const SymbolizedFrame& f) {
  Json j = Json::object();
  j["address"] = hex(f.address);
  j["function"] = f.display_name();
  j["file"] = f.file.empty() ? Json(nullptr) : Json(f.file);
  j["line"] = f.line > 0 ? Json(f.line) : Json(nullptr);
  j["module"] = f.module.empty() ? Json(nullptr) : Json(f.module);
  j["offset"] = f.module.empty() ? Json(nullptr) : Json(hex(f.module_offset));
  Json inlined = Json::array();
  for (const InlinedFrame& i : f.inlined) {
    inlined.push_back(Json{{"function", i.function},
                           {"file", i.file.empty() ? Json(nullptr) : Json(i.file)},
                           {"line", i.line > 0 ? Json(i.line) : Json(nullptr)}});
  }
  j["inlined"] = std::move(inlined);
  if (!f.note.empty()) j["note"] = f.note;
  return j;
}

bool is_own_frame(const SymbolizedFrame& f) {
  return base_name(f.module).rfind("librsrmem", 0) == 0;
}

// Symbolizes one site's frames. The library already drops its own frames; any left at the top
// (an older library) are dropped here too, so frame #0 is the allocation's caller.
std::vector<const SymbolizedFrame*> symbolize_site(const Json& site, Symbolizer& symbolizer) {
  std::vector<const SymbolizedFrame*> frames;
  for (const Json& a : member(site, "frames")) {
    const SymbolizedFrame& f = symbolizer.symbolize(parse_address(a));
    if (frames.empty() && is_own_frame(f)) continue;
    frames.push_back(&f);
  }
  return frames;
}

std::string location(const std::string& file, int line) {
  if (file.empty()) return "";
  return base_name(file) + (line > 0 ? ":" + std::to_string(line) : "");
}

void render_frames(std::ostream& out, const std::vector<const SymbolizedFrame*>& frames,
                   int limit) {
  const size_t shown =
      limit > 0 ? std::min(frames.size(), static_cast<size_t>(limit)) : frames.size();
  for (size_t i = 0; i < shown; ++i) {
    const SymbolizedFrame& f = *frames[i];
    out << "       #" << i << ' ' << f.display_name();
    const std::string where = location(f.file, f.line);
    if (!where.empty()) out << "  " << where;
    if (!f.module.empty() || !f.note.empty()) {
      out << "  (" << base_name(f.module);
      if (!f.note.empty()) out << (f.module.empty() ? "" : ", ") << f.note;
      out << ')';
    }
    out << '\n';
    // Outermost first: each line runs inside the one above it (JSON keeps innermost first).
    for (auto it = f.inlined.rbegin(); it != f.inlined.rend(); ++it) {
      const InlinedFrame& in = *it;
      out << "            inlined: " << in.function;
      const std::string in_where = location(in.file, in.line);
      if (!in_where.empty()) out << "  " << in_where;
      out << '\n';
    }
  }
  if (frames.empty()) out << "       (no frames)\n";
  if (shown < frames.size())
    out << "       ... " << frames.size() - shown << " more frames (--frames 0 shows all)\n";
}

void render_sites(std::ostream& out, const Json& sites, bool growth, Symbolizer& symbolizer,
                  int frame_limit) {
  int rank = 0;
  for (const Json& site : sites) {
    ++rank;
    out << "  " << rank << ". ";
    if (growth) {
      out << human_signed_bytes(num(site, "growth_bytes")) << " ("
          << human_signed_bytes(num(site, "growth_bytes_per_s")) << "/s), now "
          << human_bytes(num(site, "live_bytes")) << " live in "
          << human_count(num(site, "live_blocks")) << " blocks";
    } else {
      out << human_bytes(num(site, "live_bytes")) << " live in "
          << human_count(num(site, "live_blocks")) << " blocks, "
          << human_bytes(num(site, "alloc_bytes")) << " allocated in "
          << human_count(num(site, "alloc_blocks")) << " blocks";
    }
    out << "  [site " << static_cast<long long>(num(site, "id")) << ", "
        << human_count(num(site, "samples")) << " samples]\n";
    render_frames(out, symbolize_site(site, symbolizer), frame_limit);
  }
}

void render_summary(std::ostream& out, const Json& reply, const Target& target,
                    Symbolizer& symbolizer, int frame_limit) {
  const Json& heap = member(reply, "heap");
  const Json& rates = member(reply, "rates");
  const Json& sampling = member(reply, "sampling");
  out << "Memory summary for " << process_label(reply, target.pid) << ", up "
      << human_duration(num(reply, "uptime_s")) << "\n";
  auto field = [&out](const char* label, const std::string& value) {
    const std::string l(label);
    out << "  " << l << std::string(l.size() < 14 ? 14 - l.size() : 1, ' ') << value << '\n';
  };
  field("RSS", human_bytes(num(reply, "rss_bytes")) + " (peak " +
                   human_bytes(num(reply, "peak_rss_bytes")) + ")");
  field("Live heap", human_bytes(num(heap, "live_bytes")) + " in " +
                         human_count(num(heap, "live_blocks")) + " blocks (peak " +
                         human_bytes(num(heap, "peak_live_bytes")) + ")");
  field("Totals", human_count(num(heap, "allocations")) + " allocations, " +
                      human_count(num(heap, "frees")) + " frees; " +
                      human_bytes(num(heap, "allocated_bytes")) + " allocated, " +
                      human_bytes(num(heap, "freed_bytes")) + " freed");
  field("Rates", human_count(num(rates, "allocations_per_s")) + " allocs/s, " +
                     human_count(num(rates, "frees_per_s")) + " frees/s, " +
                     human_bytes(num(rates, "allocated_bytes_per_s")) + "/s allocated, live " +
                     human_signed_bytes(num(rates, "live_bytes_per_s")) + "/s (last " +
                     human_duration(num(rates, "window_s")) + ")");
  const std::string mode = str(sampling, "mode", "?");
  field("Sampling", mode +
                        (mode == "detailed"
                             ? ", every allocation"
                             : ", mean interval " + human_bytes(num(sampling, "interval_bytes"))) +
                        ", " + human_count(num(sampling, "samples")) + " samples, " +
                        human_count(num(sampling, "sites")) + " call sites");
  field("Tracker", human_bytes(num(member(reply, "tracker"), "bytes")) + " (rsrmem's own memory)");

  const Json& live = member(reply, "top_live");
  out << "\nTop call sites by live bytes (estimated from samples)";
  if (live.empty())
    out << ": none sampled yet\n";
  else
    out << ":\n";
  render_sites(out, live, /*growth=*/false, symbolizer, frame_limit);

  const Json& growth = member(reply, "top_growth");
  out << "\nTop call sites by growth over the last "
      << human_duration(num(reply, "growth_window_s"));
  if (growth.empty())
    out << ": none grew\n";
  else
    out << ":\n";
  render_sites(out, growth, /*growth=*/true, symbolizer, frame_limit);

  const std::vector<std::string> problems = symbolizer.problems();
  if (!problems.empty()) {
    out << "\nSymbolization problems:\n";
    for (const std::string& p : problems) out << "  " << p << '\n';
  }
}

// The reply with every site's "frames" replaced by symbolized frame objects.
Json symbolized_reply(Json reply, Symbolizer& symbolizer) {
  for (const char* list : {"top_live", "top_growth"}) {
    if (!reply.contains(list) || !reply[list].is_array()) continue;
    for (Json& site : reply[list]) {
      if (!site.is_object()) continue;
      Json frames = Json::array();
      for (const SymbolizedFrame* f : symbolize_site(site, symbolizer))
        frames.push_back(frame_json(*f));
      site["frames"] = std::move(frames);
    }
  }
  const std::vector<std::string> problems = symbolizer.problems();
  if (!problems.empty()) reply["symbolization_problems"] = problems;
  return reply;
}

}  // namespace

int cmd_memory_summary(const GlobalOptions& g, const SummaryOptions& options, Io io) {
  auto summary = [&](const Target& target, const Client& client) {
    const Json reply = client.request(Json{{"cmd", "summary"}, {"top", options.top}});
    const auto pid = static_cast<pid_t>(num(reply, "pid", target.pid));
    Symbolizer symbolizer(modules_of(reply), pid > 0 ? std::optional<pid_t>(pid) : std::nullopt);
    Outcome outcome;
    if (g.format == OutputFormat::kJson) {
      outcome.json = symbolized_reply(reply, symbolizer);
    } else {
      std::ostringstream out;
      render_summary(out, reply, target, symbolizer, options.frames);
      outcome.json = Json{{"pid", pid}, {"service", str(reply, "service")}};
      outcome.text = out.str();
    }
    return outcome;
  };
  return print_results(g, io, collect(g, summary));
}

}  // namespace rsr::ctl
