// The flamegraph page (report_flamegraph.h describes what it does): ctl/page/flamegraph.html,
// with flamegraph.css and flamegraph.js put in place at build time (ctl/page/embed.py), as one
// NUL-terminated string. kFlamegraphDataSlot marks where the profile's JSON goes.
#pragma once

#include <string_view>

namespace rsr::ctl {

extern const char kFlamegraphPage[];
inline constexpr std::string_view kFlamegraphDataSlot = "@PROFILE_DATA@";

}  // namespace rsr::ctl
