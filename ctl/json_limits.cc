#include "json_limits.h"

#include "format.h"

namespace rsr::ctl {

std::string json_limits_problem(std::string_view text, size_t max_depth, size_t max_values) {
  size_t depth = 0, values = 1;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth)
          return "it is nested deeper than " + std::to_string(max_depth) + " levels";
        ++values;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      case ',':
        ++values;
        break;
      default:
        continue;
    }
    if (values > max_values)
      return "it holds more than " + human_count(static_cast<double>(max_values)) + " values";
  }
  return "";
}

}  // namespace rsr::ctl
