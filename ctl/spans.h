// Lengths of time as operators write them: "90" (in the option's default unit), "30s", "2m",
// "1.5h", "2d", and sums of those in decreasing units: "1h30m", "1d12h".
#pragma once

#include <stdexcept>
#include <string>

namespace rsr::ctl {

// What is wrong with a length of time, in words ("unknown unit 'x' (s, m, h or d)").
struct SpanError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Seconds in `text`; a bare number is in `default_unit_s` seconds. Throws SpanError: empty,
// negative, not a number, an unknown unit, units out of order or repeated, a number with no unit
// after one with a unit, infinite or out of double's range ("out of range").
double parse_span(const std::string& text, double default_unit_s);

}  // namespace rsr::ctl
