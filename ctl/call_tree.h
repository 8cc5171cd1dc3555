// The call tree of a ProfileModel's stacks, the one model behind `tree`, the flamegraph page and
// the folded export: the root, then each stack's frames from the outermost in, with the
// stack's bytes and allocations added to every node on its path.
//
// Two frames of sibling calls merge when their function, file, module and inlined-ness agree;
// their lines are kept when they agree too, and become kSeveralLines when not. Strings and
// frames are interned, so a function name is held once however many nodes use it.
//
// Not thread-safe; built once, then read.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "profile_model.h"

namespace rsr::ctl {

class CallTree {
 public:
  struct Frame {
    uint32_t function = 0, file = 0, module = 0;  // indices in strings()
    bool inlined = false;
    bool operator==(const Frame&) const = default;
  };
  struct Node {
    uint32_t parent = 0;  // the root's is itself (0)
    uint32_t frame = 0;   // unused for the root
    int line = 0;         // 0 unknown; kSeveralLines when the merged frames disagree
    uint32_t depth = 0;   // the root's is 0
    uint64_t bytes = 0, count = 0;
  };
  static constexpr int kSeveralLines = -1;
  static constexpr uint32_t kRoot = 0;

  explicit CallTree(const ProfileModel& model);

  const std::vector<std::string>& strings() const { return strings_; }
  const std::vector<Frame>& frames() const { return frames_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::string& function(uint32_t node) const { return strings_[frames_[nodes_[node].frame].function]; }
  const std::string& file(uint32_t node) const { return strings_[frames_[nodes_[node].frame].file]; }

  // The node where model.stacks[i] ends (its innermost frame; the root for an empty stack).
  uint32_t leaf(size_t stack) const { return leaves_[stack]; }
  // A node's children, largest bytes first, then most allocations, then by name.
  std::vector<uint32_t> children(uint32_t node) const;
  // Every node in pre-order, children in children()'s order: a subtree is a contiguous run.
  std::vector<uint32_t> preorder() const;
  // What was allocated at the node itself: its totals less its children's.
  uint64_t self_bytes(uint32_t node) const;
  uint64_t self_count(uint32_t node) const;

 private:
  struct FrameHash {
    size_t operator()(const Frame& f) const;
  };

  uint32_t str(const std::string& s);
  uint32_t intern(const ProfileFrame& f);
  uint32_t child(uint32_t parent, uint32_t frame, int line);

  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint32_t> string_ids_;
  std::vector<Frame> frames_;
  std::unordered_map<Frame, uint32_t, FrameHash> frame_ids_;
  std::vector<Node> nodes_;
  std::vector<std::vector<uint32_t>> kids_;
  std::unordered_map<uint64_t, uint32_t> child_ids_;  // parent << 32 | frame -> node
  std::vector<uint32_t> leaves_;
};

}  // namespace rsr::ctl
