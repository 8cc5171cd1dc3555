// Exports of a ProfileModel for other tools: Brendan Gregg's folded stacks (flamegraph.pl,
// speedscope, inferno) and pprof's gzipped profile.proto (`go tool pprof`, Pyroscope,
// speedscope).
//
// The profile.proto encoder is hand-written (varints and length-delimited fields, no protobuf
// library); the message layout is github.com/google/pprof/proto/profile.proto. Sample types
// follow the view: --leaks gives inuse_objects/count + inuse_space/bytes, every other view
// alloc_objects/count + alloc_space/bytes; the default sample type is the space one.
//
// Pure functions of the model; safe from any thread for distinct streams.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "profile_model.h"

namespace rsr::ctl {

// One line per call path of the model's call tree (call_tree.h) that allocated itself, "root;
// caller;...;leaf VALUE", sorted, the value bytes (or allocations with `by_count`). Paths whose
// names coincide are merged. In names ';' becomes ':' and line breaks become spaces; an empty
// stack is "[unknown]".
void write_folded(const ProfileModel& model, std::ostream& out, bool by_count = false);
// One stack of symbolized frames, innermost first, as a folded line's stack part
// ("root;caller;...;leaf"; inlined calls as frames of their own).
std::string folded_stack(const std::vector<const SymbolizedFrame*>& frames);

// The uncompressed profile.proto message.
std::string encode_pprof(const ProfileModel& model);

// encode_pprof(), gzipped, as pprof reads it. Throws std::runtime_error if zlib fails; the
// caller checks the stream.
void write_pprof(const ProfileModel& model, std::ostream& out);

// One stack of a profile.proto message with one value per sample type: report frames, or (when
// `frames` is null) symbolized frames, whose locations are made once per frame.
struct PprofSample {
  const std::vector<ProfileFrame>* frames;  // innermost first, as in ProfileStack
  std::vector<int64_t> values;
  const std::vector<const SymbolizedFrame*>* symbolized = nullptr;  // innermost first
};

// What a profile.proto message holds beyond its samples. The period type is always
// space/bytes: every profile rsrmem writes is a memory profile.
struct PprofDocument {
  explicit PprofDocument(const std::vector<ModuleInfo>& m) : modules(m) {}
  const std::vector<ModuleInfo>& modules;
  std::vector<std::pair<std::string, std::string>> sample_types;  // {type, unit}
  std::string default_sample_type;
  std::vector<PprofSample> samples;
  std::vector<std::pair<std::string, std::string>> labels;  // string labels of every sample
  std::vector<std::string> comments;
  double time_s = 0;      // unix seconds
  double duration_s = 0;
  int64_t period = 1;     // bytes between samples (1: every allocation)
};
std::string encode_pprof(const PprofDocument& doc);

// RFC 1952 gzip of `raw`. Throws std::runtime_error if zlib fails.
std::string gzip(const std::string& raw);

}  // namespace rsr::ctl
