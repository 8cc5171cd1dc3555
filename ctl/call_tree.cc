#include "call_tree.h"

#include <algorithm>

namespace rsr::ctl {

CallTree::CallTree(const ProfileModel& model) {
  nodes_.push_back({});
  kids_.emplace_back();
  leaves_.reserve(model.stacks.size());
  for (const ProfileStack& stack : model.stacks) {
    uint32_t at = kRoot;
    for (auto f = stack.frames.rbegin(); f != stack.frames.rend(); ++f) at = child(at, intern(*f), f->line);
    leaves_.push_back(at);
    for (uint32_t n = at;; n = nodes_[n].parent) {
      nodes_[n].bytes += stack.bytes;
      nodes_[n].count += stack.count;
      if (n == kRoot) break;
    }
  }
}

size_t CallTree::FrameHash::operator()(const Frame& f) const {
  uint64_t h = f.function;
  for (uint64_t v : {uint64_t{f.file}, uint64_t{f.module}, uint64_t{f.inlined}})
    h = h * 0x9e3779b97f4a7c15ULL ^ (v + (h >> 29));
  return static_cast<size_t>(h);
}

uint32_t CallTree::str(const std::string& s) {
  auto [it, added] = string_ids_.emplace(s, static_cast<uint32_t>(strings_.size()));
  if (added) strings_.push_back(s);
  return it->second;
}

uint32_t CallTree::intern(const ProfileFrame& f) {
  const Frame key{str(f.function), str(f.file), str(f.module), f.inlined};
  auto [it, added] = frame_ids_.emplace(key, static_cast<uint32_t>(frames_.size()));
  if (added) frames_.push_back(key);
  return it->second;
}

uint32_t CallTree::child(uint32_t parent, uint32_t frame, int line) {
  const uint64_t key = uint64_t{parent} << 32 | frame;
  auto [it, added] = child_ids_.emplace(key, static_cast<uint32_t>(nodes_.size()));
  if (added) {
    nodes_.push_back({parent, frame, line, nodes_[parent].depth + 1, 0, 0});
    kids_.emplace_back();
    kids_[parent].push_back(it->second);
  } else if (nodes_[it->second].line != line) {
    nodes_[it->second].line = kSeveralLines;
  }
  return it->second;
}

std::vector<uint32_t> CallTree::children(uint32_t node) const {
  std::vector<uint32_t> k = kids_[node];
  std::sort(k.begin(), k.end(), [&](uint32_t a, uint32_t b) {
    const Node &x = nodes_[a], &y = nodes_[b];
    if (x.bytes != y.bytes) return x.bytes > y.bytes;
    if (x.count != y.count) return x.count > y.count;
    return function(a) < function(b);
  });
  return k;
}

std::vector<uint32_t> CallTree::preorder() const {
  std::vector<uint32_t> out;
  out.reserve(nodes_.size());
  std::vector<uint32_t> todo = {kRoot};
  while (!todo.empty()) {
    const uint32_t n = todo.back();
    todo.pop_back();
    out.push_back(n);
    const std::vector<uint32_t> k = children(n);
    todo.insert(todo.end(), k.rbegin(), k.rend());
  }
  return out;
}

uint64_t CallTree::self_bytes(uint32_t node) const {
  uint64_t v = nodes_[node].bytes;
  for (uint32_t c : kids_[node]) v -= nodes_[c].bytes;
  return v;
}

uint64_t CallTree::self_count(uint32_t node) const {
  uint64_t v = nodes_[node].count;
  for (uint32_t c : kids_[node]) v -= nodes_[c].count;
  return v;
}

}  // namespace rsr::ctl
