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

#include "profile_model.h"

namespace rsr::ctl {

// One line per distinct stack, "root;caller;...;leaf VALUE", sorted, the value bytes (or
// allocations with `by_count`). Stacks whose names coincide are merged; stacks whose value is 0
// are left out. In names ';' becomes ':' and line breaks become spaces; an empty stack is
// "[unknown]".
void write_folded(const ProfileModel& model, std::ostream& out, bool by_count = false);

// The uncompressed profile.proto message.
std::string encode_pprof(const ProfileModel& model);

// encode_pprof(), gzipped, as pprof reads it. Throws std::runtime_error if zlib fails; the
// caller checks the stream.
void write_pprof(const ProfileModel& model, std::ostream& out);

}  // namespace rsr::ctl
