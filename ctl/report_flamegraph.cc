#include "report_flamegraph.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "report_flamegraph_page.h"

namespace rsr::ctl {
namespace {

using nlohmann::json;

// The call tree of a model's stacks, root first. Strings and frames are interned so the page
// gets each function name once.
class CallTree {
 public:
  struct Frame {
    uint32_t function = 0, file = 0, module = 0;
    bool inlined = false;
    bool operator==(const Frame&) const = default;
  };
  struct Node {
    uint32_t parent = 0;
    uint32_t frame = 0;  // unused for the root
    int line = 0;        // kSeveralLines when the merged frames disagree
    uint64_t bytes = 0, count = 0;
  };

  static constexpr int kSeveralLines = -1;

  explicit CallTree(const ProfileModel& model) {
    nodes_.push_back({});
    for (const ProfileStack& stack : model.stacks) {
      uint32_t at = 0;
      add(at, stack);
      for (auto f = stack.frames.rbegin(); f != stack.frames.rend(); ++f) {
        at = child(at, intern(*f), f->line);
        add(at, stack);
      }
    }
  }

  const std::vector<std::string>& strings() const { return strings_; }
  const std::vector<Frame>& frames() const { return frames_; }

  // Nodes in pre-order, children largest first (then by name), with `parent` replaced by the
  // node's depth (the root's is 0): a subtree is a contiguous run, and a node's parent is the
  // closest node before it one level up.
  std::vector<Node> preorder() const {
    std::vector<std::vector<uint32_t>> kids(nodes_.size());
    for (uint32_t i = 1; i < nodes_.size(); ++i) kids[nodes_[i].parent].push_back(i);
    std::vector<Node> out;
    out.reserve(nodes_.size());
    std::vector<std::pair<uint32_t, uint32_t>> todo = {{0, 0}};  // (index, depth)
    while (!todo.empty()) {
      auto [old, depth] = todo.back();
      todo.pop_back();
      out.push_back(nodes_[old]);
      out.back().parent = depth;
      auto& k = kids[old];
      std::sort(k.begin(), k.end(), [&](uint32_t a, uint32_t b) {
        const Node &x = nodes_[a], &y = nodes_[b];
        if (x.bytes != y.bytes) return x.bytes > y.bytes;
        if (x.count != y.count) return x.count > y.count;
        return strings_[frames_[x.frame].function] < strings_[frames_[y.frame].function];
      });
      for (auto c = k.rbegin(); c != k.rend(); ++c) todo.emplace_back(*c, depth + 1);
    }
    return out;
  }

 private:
  struct FrameHash {
    size_t operator()(const Frame& f) const {
      uint64_t h = f.function;
      for (uint64_t v : {uint64_t{f.file}, uint64_t{f.module}, uint64_t{f.inlined}})
        h = h * 0x9e3779b97f4a7c15ULL ^ (v + (h >> 29));
      return static_cast<size_t>(h);
    }
  };

  void add(uint32_t node, const ProfileStack& stack) {
    nodes_[node].bytes += stack.bytes;
    nodes_[node].count += stack.count;
  }

  uint32_t str(const std::string& s) {
    auto [it, added] = string_ids_.emplace(s, static_cast<uint32_t>(strings_.size()));
    if (added) strings_.push_back(s);
    return it->second;
  }

  uint32_t intern(const ProfileFrame& f) {
    Frame key{str(f.function), str(f.file), str(f.module), f.inlined};
    auto [it, added] = frame_ids_.emplace(key, static_cast<uint32_t>(frames_.size()));
    if (added) frames_.push_back(key);
    return it->second;
  }

  uint32_t child(uint32_t parent, uint32_t frame, int line) {
    const uint64_t key = uint64_t{parent} << 32 | frame;
    auto [it, added] = children_.emplace(key, static_cast<uint32_t>(nodes_.size()));
    if (added) {
      nodes_.push_back({parent, frame, line, 0, 0});
    } else if (nodes_[it->second].line != line) {
      nodes_[it->second].line = kSeveralLines;
    }
    return it->second;
  }

  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint32_t> string_ids_;
  std::vector<Frame> frames_;
  std::unordered_map<Frame, uint32_t, FrameHash> frame_ids_;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, uint32_t> children_;  // parent << 32 | frame -> node
};

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
      {"stacks", m.stacks.size()},
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
  for (const CallTree::Node& n : tree.preorder()) {
    if (first) {
      out += "0,-1,0,";
    } else {
      out += ',' + std::to_string(n.parent) + ',' + std::to_string(n.frame) + ',' +
             std::to_string(n.line) + ',';
    }
    first = false;
    out += std::to_string(n.bytes) + ',' + std::to_string(n.count);
  }
  out += "]}";
  return out;
}

void write_flamegraph_html(const ProfileModel& model, std::ostream& out) {
  const std::string_view page = kFlamegraphPage;
  const std::string_view slot = kFlamegraphDataSlot;
  const size_t at = page.find(slot);
  out << page.substr(0, at) << flamegraph_json(model) << page.substr(at + slot.size());
}

}  // namespace rsr::ctl
