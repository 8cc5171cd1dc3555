// Human-readable rendering: binary byte units, counts with thousands separators, durations and
// aligned text tables. Pure functions (a Table is a plain value); safe from any thread.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace rsr::ctl {

// 0 B, 999 B, 1.0 KiB, 12.3 MiB, 1.50 GiB ... (1024-based, as `free -h` and Grafana's
// "bytes(IEC)").
std::string human_bytes(double bytes);
// Like human_bytes with an explicit sign: +1.2 MiB, -512 B, 0 B.
std::string human_signed_bytes(double bytes);
// Compact, for sentences: 512 B, 3.1 KiB, 64.0 KiB, 812 MiB, 1.5 GiB (one decimal below 100,
// none from 100).
std::string human_bytes_short(double bytes);
// 1,234,567
std::string human_count(double n);
// 45s, 4m 12s, 2h 05m, 3d 04h.
std::string human_duration(double seconds);
// For sentences: "0.1 seconds", "1 second", "45 seconds", "1 minute", "1.5 minutes",
// "12 minutes", "2 hours", "3 days": the largest unit that fits, one decimal below 10 (dropped
// when whole), singular only for exactly 1.
std::string human_span(double seconds);
// `v` with `decimals` digits after the point.
std::string fixed(double v, int decimals);
// "/a/b/libfoo.so.6" -> "libfoo.so.6".
std::string base_name(const std::string& path);

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string title;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void add_row(std::vector<std::string> cells);
  // Two spaces between columns; the last column is never padded (it may be long, e.g. a command).
  void render(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace rsr::ctl
