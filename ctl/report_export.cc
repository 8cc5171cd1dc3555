#include "report_export.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "call_tree.h"

namespace rsr::ctl {
namespace {

std::string folded_name(const std::string& function) {
  std::string name = function.empty() ? "[unknown]" : function;
  for (char& c : name) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r') c = ' ';
  }
  return name;
}

// The wire format: https://protobuf.dev/programming-guides/encoding/. Fields holding zero are
// left out (proto3 defaults) except where the caller writes them explicitly.
class ProtoWriter {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<char>(v));
  }
  void tag(int field, int wire_type) { varint(static_cast<uint64_t>(field) << 3 | wire_type); }
  void uint(int field, uint64_t v) {
    if (v == 0) return;
    tag(field, 0);
    varint(v);
  }
  void sint64(int field, int64_t v) { uint(field, static_cast<uint64_t>(v)); }
  void boolean(int field, bool v) { uint(field, v ? 1 : 0); }
  // Length-delimited: strings, bytes and nested messages. Always written (an empty string in a
  // repeated field is an element).
  void bytes(int field, const std::string& v) {
    tag(field, 2);
    varint(v.size());
    buf_ += v;
  }
  void message(int field, const ProtoWriter& m) { bytes(field, m.buf_); }
  void packed(int field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter p;
    for (uint64_t v : values) p.varint(v);
    bytes(field, p.buf_);
  }
  const std::string& data() const { return buf_; }

 private:
  std::string buf_;
};

// profile.proto field numbers.
namespace pb {
enum Profile {
  kSampleType = 1, kSample = 2, kMapping = 3, kLocation = 4, kFunction = 5, kStringTable = 6,
  kTimeNanos = 9, kDurationNanos = 10, kPeriodType = 11, kPeriod = 12, kComment = 13,
  kDefaultSampleType = 14,
};
enum ValueType { kType = 1, kUnit = 2 };
enum Sample { kLocationId = 1, kValue = 2, kLabel = 3 };
enum Label { kLabelKey = 1, kLabelStr = 2 };
enum Mapping {
  kMappingId = 1, kMemoryStart = 2, kMemoryLimit = 3, kFileOffset = 4, kFilename = 5,
  kBuildId = 6, kHasFunctions = 7, kHasFilenames = 8, kHasLineNumbers = 9, kHasInlineFrames = 10,
};
enum Location { kLocId = 1, kLocMappingId = 2, kAddress = 3, kLine = 4 };
enum Line { kFunctionId = 1, kLineNumber = 2 };
enum Function { kFuncId = 1, kName = 2, kSystemName = 3, kFuncFilename = 4 };
}  // namespace pb

// Builds the tables of a Profile message: strings, functions, locations, mappings.
class PprofBuilder {
 public:
  explicit PprofBuilder(const std::vector<ModuleInfo>& modules) : modules_(modules) {
    strings_.push_back("");
    string_ids_[""] = 0;
    for (size_t i = 0; i < modules.size(); ++i) {
      by_start_.push_back(i);
      module_ids_.emplace(modules[i].path, i + 1);
    }
    std::sort(by_start_.begin(), by_start_.end(),
              [&](size_t a, size_t b) { return modules[a].start < modules[b].start; });
  }

  int64_t str(const std::string& s) {
    auto [it, added] = string_ids_.emplace(s, static_cast<int64_t>(strings_.size()));
    if (added) strings_.push_back(s);
    return it->second;
  }

  // Location ids of a stack, leaf first. A location is one address: its inlined frames and the
  // frame containing them, innermost first, as profile.proto's Location.line wants.
  std::vector<uint64_t> locations(const std::vector<ProfileFrame>& frames) {
    std::vector<uint64_t> ids;
    for (size_t begin = 0; begin < frames.size();) {
      size_t end = begin + 1;
      while (end < frames.size() && frames[end - 1].inlined &&
             frames[end].address == frames[begin].address)
        ++end;
      ids.push_back(location(frames, begin, end));
      begin = end;
    }
    return ids;
  }

  // The same for a stack of symbolized frames (each address's location made once).
  std::vector<uint64_t> locations(const std::vector<const SymbolizedFrame*>& frames) {
    std::vector<uint64_t> ids;
    ids.reserve(frames.size());
    for (const SymbolizedFrame* f : frames) {
      auto [it, added] = symbolized_ids_.emplace(f, 0);
      if (added) it->second = location(*f);
      ids.push_back(it->second);
    }
    return ids;
  }

  void write_tables(ProtoWriter& profile) const {
    for (size_t i = 0; i < modules_.size(); ++i) {
      const ModuleInfo& m = modules_[i];
      ProtoWriter w;
      w.uint(pb::kMappingId, i + 1);
      w.uint(pb::kMemoryStart, m.start);
      w.uint(pb::kMemoryLimit, m.end);
      w.uint(pb::kFileOffset, 0);
      w.sint64(pb::kFilename, string_ids_.at(m.path));
      w.sint64(pb::kBuildId, string_ids_.at(m.build_id));
      // The frames are symbolized already: pprof must not look for the binaries again.
      w.boolean(pb::kHasFunctions, true);
      w.boolean(pb::kHasFilenames, true);
      w.boolean(pb::kHasLineNumbers, true);
      w.boolean(pb::kHasInlineFrames, true);
      profile.message(pb::kMapping, w);
    }
    for (const ProtoWriter& l : locations_) profile.message(pb::kLocation, l);
    for (const ProtoWriter& f : functions_) profile.message(pb::kFunction, f);
    for (const std::string& s : strings_) profile.bytes(pb::kStringTable, s);
  }

  // Interns module strings before the tables are written.
  void intern_modules() {
    for (const ModuleInfo& m : modules_) {
      str(m.path);
      str(m.build_id);
    }
  }

 private:
  uint64_t function(const std::string& function, const std::string& file) {
    const std::string name = function.empty() ? "[unknown]" : function;
    const std::string key = name + '\0' + file;
    auto it = function_ids_.find(key);
    if (it != function_ids_.end()) return it->second;
    const uint64_t id = functions_.size() + 1;
    ProtoWriter w;
    w.uint(pb::kFuncId, id);
    w.sint64(pb::kName, str(name));
    // Only demangled names travel in a capture's model.
    w.sint64(pb::kSystemName, str(name));
    w.sint64(pb::kFuncFilename, str(file));
    functions_.push_back(std::move(w));
    function_ids_.emplace(key, id);
    return id;
  }

  uint64_t mapping(uint64_t address, const std::string& module) const {
    const auto& mods = modules_;
    auto it = std::upper_bound(by_start_.begin(), by_start_.end(), address,
                               [&](uint64_t a, size_t i) { return a < mods[i].start; });
    if (address != 0 && it != by_start_.begin()) {
      const size_t i = *std::prev(it);
      if (address < mods[i].end) return i + 1;
    }
    auto named = module_ids_.find(module);
    return module.empty() || named == module_ids_.end() ? 0 : named->second;
  }

  // One location per symbolized frame: its inlined calls, innermost first, then its function.
  uint64_t location(const SymbolizedFrame& f) {
    std::vector<std::pair<uint64_t, int>> lines;
    for (const InlinedFrame& in : f.inlined)
      lines.emplace_back(function(in.function, in.file), in.line);
    lines.emplace_back(function(f.display_name(), f.file), f.line);
    return add_location(f.address, mapping(f.address, f.module), lines);
  }

  uint64_t add_location(uint64_t address, uint64_t mapping_id,
                        const std::vector<std::pair<uint64_t, int>>& lines) {
    const uint64_t id = locations_.size() + 1;
    ProtoWriter w;
    w.uint(pb::kLocId, id);
    w.uint(pb::kLocMappingId, mapping_id);
    w.uint(pb::kAddress, address);
    for (const auto& [function_id, line] : lines) {
      ProtoWriter l;
      l.uint(pb::kFunctionId, function_id);
      l.sint64(pb::kLineNumber, line);
      w.message(pb::kLine, l);
    }
    locations_.push_back(std::move(w));
    return id;
  }

  uint64_t location(const std::vector<ProfileFrame>& frames, size_t begin, size_t end) {
    std::vector<std::pair<uint64_t, int>> lines;
    std::string key = std::to_string(frames[begin].address);
    for (size_t i = begin; i < end; ++i) {
      lines.emplace_back(function(frames[i].function, frames[i].file), frames[i].line);
      key += ':' + std::to_string(lines.back().first) + '.' + std::to_string(frames[i].line);
    }
    auto it = location_ids_.find(key);
    if (it != location_ids_.end()) return it->second;
    const uint64_t id = add_location(frames[begin].address,
                                     mapping(frames[end - 1].address, frames[end - 1].module), lines);
    location_ids_.emplace(std::move(key), id);
    return id;
  }

  const std::vector<ModuleInfo>& modules_;
  std::vector<std::string> strings_;
  std::unordered_map<std::string, int64_t> string_ids_;
  std::vector<size_t> by_start_;  // module indices by start address
  std::unordered_map<std::string, uint64_t> module_ids_;
  std::vector<ProtoWriter> functions_, locations_;
  std::unordered_map<std::string, uint64_t> function_ids_, location_ids_;
  std::unordered_map<const SymbolizedFrame*, uint64_t> symbolized_ids_;
};

const char* view_title(ProfileView view) {
  switch (view) {
    case ProfileView::kLeaks: return "leaks (still live at the end)";
    case ProfileView::kTemporary: return "temporary allocations";
    case ProfileView::kAll: break;
  }
  return "all allocations";
}

// Whole seconds apart from the fraction: a double holds today's epoch in nanoseconds only to
// the nearest 256.
int64_t nanos(double seconds) {
  const double whole = std::floor(seconds);
  return static_cast<int64_t>(whole) * 1000000000 + std::llround((seconds - whole) * 1e9);
}

}  // namespace

std::string folded_stack(const std::vector<const SymbolizedFrame*>& frames) {
  std::string line;
  for (auto f = frames.rbegin(); f != frames.rend(); ++f) {
    if (!line.empty()) line += ';';
    line += folded_name((*f)->display_name());
    for (auto in = (*f)->inlined.rbegin(); in != (*f)->inlined.rend(); ++in)
      line += ';' + folded_name(in->function);
  }
  return line.empty() ? "[unknown]" : line;
}

void write_folded(const ProfileModel& model, std::ostream& out, bool by_count) {
  const CallTree tree(model);
  std::map<std::string, uint64_t> lines;
  for (uint32_t node = 0; node < tree.nodes().size(); ++node) {
    const uint64_t value = by_count ? tree.self_count(node) : tree.self_bytes(node);
    if (value == 0) continue;
    std::vector<uint32_t> path;
    for (uint32_t n = node; n != CallTree::kRoot; n = tree.nodes()[n].parent) path.push_back(n);
    std::string line;
    for (auto n = path.rbegin(); n != path.rend(); ++n) line += (line.empty() ? "" : ";") + folded_name(tree.function(*n));
    lines[line.empty() ? "[unknown]" : line] += value;
  }
  for (const auto& [line, value] : lines) out << line << ' ' << value << '\n';
}

std::string encode_pprof(const PprofDocument& doc) {
  PprofBuilder b(doc.modules);
  ProtoWriter profile;
  for (const auto& [type, unit] : doc.sample_types) {
    ProtoWriter vt;
    vt.sint64(pb::kType, b.str(type));
    vt.sint64(pb::kUnit, b.str(unit));
    profile.message(pb::kSampleType, vt);
  }
  std::vector<ProtoWriter> labels;
  for (const auto& [key, value] : doc.labels) {
    ProtoWriter l;
    l.sint64(pb::kLabelKey, b.str(key));
    l.sint64(pb::kLabelStr, b.str(value));
    labels.push_back(std::move(l));
  }
  for (const PprofSample& sample : doc.samples) {
    ProtoWriter s;
    s.packed(pb::kLocationId, sample.frames ? b.locations(*sample.frames)
                                            : b.locations(*sample.symbolized));
    // Packed even when zero: a sample has one value per sample type.
    ProtoWriter values;
    for (int64_t v : sample.values) values.varint(static_cast<uint64_t>(v));
    s.bytes(pb::kValue, values.data());
    for (const ProtoWriter& l : labels) s.message(pb::kLabel, l);
    profile.message(pb::kSample, s);
  }
  std::vector<uint64_t> comments;
  for (const std::string& c : doc.comments) comments.push_back(static_cast<uint64_t>(b.str(c)));
  const int64_t space = b.str("space");
  const int64_t bytes = b.str("bytes");
  const int64_t default_type = b.str(doc.default_sample_type);
  b.intern_modules();

  b.write_tables(profile);
  profile.sint64(pb::kTimeNanos, nanos(doc.time_s));
  profile.sint64(pb::kDurationNanos, nanos(doc.duration_s));
  ProtoWriter period_type;
  period_type.sint64(pb::kType, space);
  period_type.sint64(pb::kUnit, bytes);
  profile.message(pb::kPeriodType, period_type);
  profile.sint64(pb::kPeriod, doc.period);
  profile.packed(pb::kComment, comments);
  profile.sint64(pb::kDefaultSampleType, default_type);
  return profile.data();
}

std::string encode_pprof(const ProfileModel& model) {
  const bool inuse = model.view == ProfileView::kLeaks;
  PprofDocument doc(model.modules);
  const std::string space = inuse ? "inuse_space" : "alloc_space";
  doc.sample_types = {{inuse ? "inuse_objects" : "alloc_objects", "count"}, {space, "bytes"}};
  doc.default_sample_type = space;
  for (const ProfileStack& stack : model.stacks)
    doc.samples.push_back({&stack.frames, {static_cast<int64_t>(stack.count),
                                           static_cast<int64_t>(stack.bytes)}});
  doc.comments = {"rsrmem capture " + model.id, std::string("view: ") + view_title(model.view)};
  if (!model.service.empty()) doc.comments.push_back("service: " + model.service);
  if (!model.program.empty()) doc.comments.push_back("program: " + model.program);
  if (model.pid != 0) doc.comments.push_back("pid: " + std::to_string(model.pid));
  if (model.truncated)
    doc.comments.push_back("truncated: the capture ended early (" + model.end_reason + ")");
  if (model.dropped_events != 0)
    doc.comments.push_back("dropped events: " + std::to_string(model.dropped_events));
  doc.time_s = model.start_time;
  doc.duration_s = model.duration_s;
  // Captures record every allocation: nothing is scaled.
  doc.period = 1;
  return encode_pprof(doc);
}

std::string gzip(const std::string& raw) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer rather than zlib's.
  // The fastest level, as Go's runtime/pprof writes its profiles.
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib: deflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char chunk[64 * 1024];
  int rc = Z_OK;
  do {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    rc = deflate(&z, Z_FINISH);
    if (rc == Z_STREAM_ERROR) {
      deflateEnd(&z);
      throw std::runtime_error("zlib: deflate failed");
    }
    out.append(chunk, sizeof chunk - z.avail_out);
  } while (rc != Z_STREAM_END);
  deflateEnd(&z);
  return out;
}

void write_pprof(const ProfileModel& model, std::ostream& out) {
  const std::string packed = gzip(encode_pprof(model));
  out.write(packed.data(), static_cast<std::streamsize>(packed.size()));
}

}  // namespace rsr::ctl
