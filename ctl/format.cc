#include "format.h"

#include <cmath>
#include <cstdio>

namespace rsr::ctl {

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string human_bytes(double bytes) {
  if (!std::isfinite(bytes)) return "?";
  const bool negative = bytes < 0;
  double v = std::fabs(bytes);
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) {
    v /= 1024.0;
    ++unit;
  }
  std::string num;
  if (unit == 0) {
    num = fixed(std::round(v), 0);
  } else {
    // Keep three significant digits at most: 1.50 GiB, 12.3 MiB, 512.0 KiB.
    num = fixed(v, v < 10 ? 2 : 1);
    if (v >= 100) num = fixed(v, 1);
  }
  return (negative ? "-" : "") + num + " " + kUnits[unit];
}

std::string human_bytes_short(double bytes) {
  if (!std::isfinite(bytes)) return "?";
  const bool negative = bytes < 0;
  double v = std::fabs(bytes);
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) {
    v /= 1024.0;
    ++unit;
  }
  // 1023.96 KiB would print as "1024 KiB": carry into the next unit instead.
  if (unit > 0 && unit + 1 < sizeof kUnits / sizeof kUnits[0] && std::round(v) >= 1024) {
    v /= 1024.0;
    ++unit;
  }
  const std::string num = unit == 0 || v >= 99.95 ? fixed(std::round(v), 0) : fixed(v, 1);
  return (negative ? "-" : "") + num + " " + kUnits[unit];
}

std::string human_signed_bytes(double bytes) {
  if (bytes > 0) return "+" + human_bytes(bytes);
  return human_bytes(bytes);
}

std::string human_count(double n) {
  if (!std::isfinite(n)) return "?";
  const bool negative = n < 0;
  std::string digits = fixed(std::fabs(std::round(n)), 0);
  std::string out;
  const size_t len = digits.size();
  for (size_t i = 0; i < len; ++i) {
    if (i > 0 && (len - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (negative ? "-" : "") + out;
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds);
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm %02llds", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh %02lldm", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldd %02lldh", s / 86400, (s % 86400) / 3600);
  }
  return buf;
}

std::string human_span(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  struct Unit {
    const char* name;
    double seconds;
  };
  static const Unit kUnits[] = {{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};
  // The largest unit of which there is at least one once rounded to a tenth (59.97 s is 1 minute).
  size_t unit = 0;
  while (unit + 1 < sizeof kUnits / sizeof kUnits[0] &&
         std::round(seconds / kUnits[unit + 1].seconds * 10) >= 10)
    ++unit;
  const double v = seconds / kUnits[unit].seconds;
  std::string num;
  if (v >= 9.95) {
    num = fixed(std::round(v), 0);
  } else {
    num = fixed(v, 1);
    if (num.size() > 2 && num.compare(num.size() - 2, 2, ".0") == 0) num.resize(num.size() - 2);
  }
  return num + " " + kUnits[unit].name + (num == "1" ? "" : "s");
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::render(std::ostream& out) const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].title.size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const bool last = c + 1 == columns_.size();
      const std::string pad(width[c] - cells[c].size(), ' ');
      if (columns_[c].align == Align::kRight)
        line += pad + cells[c];
      else
        line += last ? cells[c] : cells[c] + pad;
      if (!last) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  std::vector<std::string> titles;
  for (const Column& c : columns_) titles.push_back(c.title);
  emit(titles);
  for (const auto& row : rows_) emit(row);
}

}  // namespace rsr::ctl
