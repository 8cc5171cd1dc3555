// The flamegraph page (HTML, CSS and JavaScript in one file); report_flamegraph.h describes
// what it does. kFlamegraphDataSlot marks where the profile's JSON goes.
#pragma once

#include <string_view>

namespace rsr::ctl {

extern const char kFlamegraphPage[];
inline constexpr std::string_view kFlamegraphDataSlot = "@PROFILE_DATA@";

}  // namespace rsr::ctl
