// A pass over JSON text from an untrusted source (a control-socket reply, a capture's header)
// before nlohmann parses it: nlohmann builds the whole tree, at up to 80 bytes per value, and
// copies and prints it recursively, so a reply a million levels deep crashes the printer and ten
// million empty objects take gigabytes. The pass costs one read of the text and allocates
// nothing. It does not validate: the parser still does.
//
// Pure function; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rsr::ctl {

// "" when `text` nests at most `max_depth` arrays and objects deep and holds at most
// `max_values` values (counted as containers plus separators, so an upper bound); otherwise what
// is wrong: "it is nested deeper than 64 levels", "it holds more than 2,000,000 values".
std::string json_limits_problem(std::string_view text, size_t max_depth, size_t max_values);

}  // namespace rsr::ctl
