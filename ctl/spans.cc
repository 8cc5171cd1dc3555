#include "spans.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace rsr::ctl {
namespace {

double unit_seconds(char unit) {
  switch (unit) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
  }
  return 0;
}

}  // namespace

double parse_span(const std::string& text, double default_unit_s) {
  if (text.empty()) throw SpanError("empty");
  if (text[0] == '-') throw SpanError("negative");
  double total = 0, last_unit = 0;
  size_t at = 0;
  while (at < text.size()) {
    const char* begin = text.c_str() + at;
    if (!(std::isdigit(static_cast<unsigned char>(*begin)) || *begin == '.'))
      throw SpanError(at == 0 ? "not a number" : "not a number at '" + text.substr(at) + "'");
    // Plain decimals only: strtod would take "0x1d", "1e3" and "inf" too.
    size_t digits = 0;
    while (std::isdigit(static_cast<unsigned char>(begin[digits])) || begin[digits] == '.') ++digits;
    const std::string number(begin, digits);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size()) throw SpanError("not a number: '" + number + "'");
    end = const_cast<char*>(begin) + digits;
    if (end == begin || std::isnan(v)) throw SpanError("not a number");
    if (errno == ERANGE || !std::isfinite(v)) throw SpanError("out of range");
    at = static_cast<size_t>(end - text.c_str());
    if (at == text.size()) {
      if (last_unit != 0) throw SpanError("'" + text.substr(begin - text.c_str()) + "' has no unit (s, m, h or d)");
      return v * default_unit_s;
    }
    const double unit = unit_seconds(text[at]);
    if (unit == 0) throw SpanError("unknown unit '" + text.substr(at, 1) + "' (s, m, h or d)");
    if (last_unit != 0 && unit >= last_unit) throw SpanError("units out of order (write 1h30m, not 30m1h)");
    last_unit = unit;
    total += v * unit;
    ++at;
  }
  if (!std::isfinite(total)) throw SpanError("out of range");
  return total;
}

}  // namespace rsr::ctl
