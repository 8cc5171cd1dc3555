#include "report_flamegraph.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "call_tree.h"
#include "report_flamegraph_page.h"

namespace rsr::ctl {
namespace {

using nlohmann::json;

// JSON text safe inside <script>: '<', '>' and '&' only ever occur inside JSON strings, where
// their \u escapes mean the same characters to JSON.parse.
std::string script_safe(const std::string& json_text) {
  std::string out;
  out.reserve(json_text.size());
  for (char c : json_text) {
    switch (c) {
      case '<': out += "\\u003c"; break;
      case '>': out += "\\u003e"; break;
      case '&': out += "\\u0026"; break;
      default: out += c;
    }
  }
  return out;
}

std::string dump(const json& j) {
  // Invalid UTF-8 (a mangled name, a path in another encoding) becomes U+FFFD, never an error.
  return script_safe(j.dump(-1, ' ', false, json::error_handler_t::replace));
}

json meta(const ProfileModel& m) {
  return {
      {"id", m.id},
      {"kind", m.kind},
      {"service", m.service},
      {"program", m.program},
      {"pid", m.pid},
      {"start_time", m.start_time},
      {"duration_s", m.duration_s},
      {"end_reason", m.end_reason},
      {"truncated", m.truncated},
      {"view", view_name(m.view)},
      {"allocations", m.allocations},
      {"frees", m.frees},
      {"allocated_bytes", m.allocated_bytes},
      {"freed_bytes", m.freed_bytes},
      {"peak_bytes", m.peak_bytes},
      {"live_bytes_at_end", m.live_bytes_at_end},
      {"live_blocks_at_end", m.live_blocks_at_end},
      {"dropped_events", m.dropped_events},
      {"threads", m.threads.size()},
      {"modules", m.modules.size()},
      {"stacks", std::count_if(m.stacks.begin(), m.stacks.end(),
                               [](const ProfileStack& s) { return s.count > 0 || s.bytes > 0; })},
  };
}

}  // namespace

std::string flamegraph_json(const ProfileModel& model) {
  const CallTree tree(model);
  std::string out = "{\"meta\":" + dump(meta(model));
  out += ",\"strings\":" + dump(json(tree.strings()));
  // Four numbers a frame: function, file, module (string indices), inlined.
  out += ",\"frames\":[";
  bool first = true;
  for (const CallTree::Frame& f : tree.frames()) {
    out += first ? "" : ",";
    first = false;
    out += std::to_string(f.function) + ',' + std::to_string(f.file) + ',' +
           std::to_string(f.module) + ',' + (f.inlined ? '1' : '0');
  }
  // Five numbers a node in pre-order: depth, frame (-1 for the root), line (0 unknown, -1
  // several), bytes, count.
  out += "],\"nodes\":[";
  first = true;
  const std::vector<uint32_t> order = tree.preorder();
  std::vector<uint32_t> position(order.size());
  for (uint32_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  for (uint32_t i : order) {
    const CallTree::Node& n = tree.nodes()[i];
    if (first) {
      out += "0,-1,0,";
    } else {
      out += ',' + std::to_string(n.depth) + ',' + std::to_string(n.frame) + ',' + std::to_string(n.line) + ',';
    }
    first = false;
    out += std::to_string(n.bytes) + ',' + std::to_string(n.count);
  }
  out += "]";
  // Threads as [tid, name] pairs; memory over time as three series of the timeline's spans.
  json threads = json::array();
  for (const ProfileThread& t : model.threads) threads.push_back(json::array({t.tid, t.name}));
  out += ",\"threads\":" + dump(threads);
  json live = json::array(), heap = json::array(), rss = json::array();
  for (const TimePoint& p : model.timeline) {
    live.push_back(p.live_bytes);
    heap.push_back(p.heap_bytes);
    rss.push_back(p.rss_bytes);
  }
  out += ",\"timeline\":" + dump(json{{"step_s", model.timeline_step_s}, {"live", live}, {"heap", heap}, {"rss", rss}});
  // Six numbers a use: the node its stack ends at, thread, alloc span, free span (-1: still
  // live at the end), count, bytes.
  out += ",\"uses\":{\"step_s\":" + json(model.use_step_s).dump() + ",\"rows\":[";
  first = true;
  for (const StackUse& u : model.uses) {
    out += first ? "" : ",";
    first = false;
    out += std::to_string(position[tree.leaf(u.stack)]) + ',' + std::to_string(u.thread) + ',' +
           std::to_string(u.alloc_span) + ',' +
           (u.free_span == StackUse::kStillLive ? std::string("-1") : std::to_string(u.free_span)) + ',' +
           std::to_string(u.count) + ',' + std::to_string(u.bytes);
  }
  out += "]}}";
  return out;
}

void write_flamegraph_html(const ProfileModel& model, std::ostream& out) {
  const std::string_view page = kFlamegraphPage;
  const std::string_view slot = kFlamegraphDataSlot;
  const size_t at = page.find(slot);
  out << page.substr(0, at) << flamegraph_json(model) << page.substr(at + slot.size());
}

}  // namespace rsr::ctl
