// `rsrmemctl memory-summary`: heap and RSS figures, then the top call sites by live bytes and by
// growth, with their stacks symbolized here (the process only sends addresses and its modules).
#include <sstream>

#include "commands.h"
#include "errors.h"
#include "format.h"
#include "site_stacks.h"
#include "symbolizer.h"

namespace rsr::ctl {
namespace {

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
    const std::vector<const SymbolizedFrame*> frames = symbolize_site(site, symbolizer);
    if (const UserFrame u = first_user_frame(frames); u.found && !u.fallback)
      out << "     in " << user_frame_label(u) << '\n';
    if (const std::string age = age_sentence(member(site, "age")); !age.empty())
      out << "     age: " << age << '\n';
    render_frames(out, frames, frame_limit);
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
  if (const double unattributed = num(sampling, "unattributed_live_bytes"); unattributed > 0)
    field("Unattributed", human_bytes(unattributed) + " live at call sites beyond the site table");
  if (const std::string warning = estimates_warning(reply); !warning.empty()) out << '\n' << warning;

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
    set_allocator_wrappers(str(reply, "allocator_wrappers"));
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
