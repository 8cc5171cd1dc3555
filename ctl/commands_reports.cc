// Reports over a capture file, like memray's: summary, stats, table, tree (text or JSON), and the
// flamegraph and export writers (report_flamegraph.h, report_export.h). Every report reads the
// file once through capture_reader.h for one view.
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "call_tree.h"
#include "capture_reader.h"
#include "commands.h"
#include "errors.h"
#include "format.h"
#include "regular_file.h"
#include "report_export.h"
#include "report_flamegraph.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

std::string view_label(ProfileView view) {
  switch (view) {
    case ProfileView::kAll: return "all allocations";
    case ProfileView::kLeaks: return "still live at the end (--leaks)";
    case ProfileView::kTemporary: return "temporary allocations (--temporary)";
  }
  return "";
}

std::string percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? "-" : fixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + "%";
}

double share(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0 : static_cast<double>(part) / static_cast<double>(whole);
}

ProfileModel load(const ReportOptions& options, Io io, bool uses = false) {
  CaptureReadOptions read;
  read.view = options.view;
  read.uses = uses;
  const bool tty = ::isatty(STDERR_FILENO) == 1 && &io.err == &std::cerr;
  int shown = -1;
  if (tty) {
    read.progress = [&](uint64_t done, uint64_t total) {
      const int pct = total == 0 ? 100 : static_cast<int>(100 * done / total);
      if (pct == shown) return;
      shown = pct;
      io.err << "\rreading " << options.file << ": " << pct << "%" << std::flush;
    };
  }
  ProfileModel model;
  try {
    model = read_capture(options.file, read);
  } catch (...) {
    if (shown >= 0) io.err << "\r\033[K" << std::flush;
    throw;
  }
  if (shown >= 0) io.err << "\r\033[K" << std::flush;
  for (const std::string& w : model.warnings) io.err << "rsrmemctl: warning: " << w << '\n';
  return model;
}

// A row of table/summary/stats: the stacks that share a first user frame.
struct Row {
  std::string function, file, module;
  int line = 0;
  uint64_t bytes = 0, count = 0;
};

// By function (summary, stats) or by function and line (table).
std::vector<Row> aggregate(const ProfileModel& model, bool by_line) {
  std::map<std::string, Row> rows;
  for (const ProfileStack& s : model.stacks) {
    Row r;
    if (s.user_frame < 0) {
      r.function = "[unknown]";
    } else {
      const ProfileFrame& f = s.frames[static_cast<size_t>(s.user_frame)];
      r.function = qualified_name(f.function);
      r.file = f.file;
      r.line = f.line;
      r.module = f.module;
    }
    const std::string key = by_line ? r.function + '\x1f' + r.file + ':' + std::to_string(r.line)
                                    : r.function;
    auto [it, fresh] = rows.try_emplace(key, r);
    if (!by_line && !fresh && it->second.line != r.line) it->second.line = 0;
    it->second.bytes += s.bytes;
    it->second.count += s.count;
  }
  std::vector<Row> out;
  for (auto& [key, r] : rows) out.push_back(std::move(r));
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.count > b.count;
  });
  return out;
}

std::vector<Row> top(std::vector<Row> rows, int n) {
  if (n > 0 && rows.size() > static_cast<size_t>(n)) rows.resize(static_cast<size_t>(n));
  return rows;
}

Json row_json(const Row& r, const ProfileModel& m) {
  return Json{{"function", r.function},
              {"file", r.file.empty() ? Json(nullptr) : Json(r.file)},
              {"line", r.line > 0 ? Json(r.line) : Json(nullptr)},
              {"module", r.module.empty() ? Json(nullptr) : Json(r.module)},
              {"bytes", r.bytes},
              {"count", r.count},
              {"share", share(r.bytes, m.view_bytes)}};
}

void render_rows(std::ostream& out, const std::vector<Row>& rows, const ProfileModel& m) {
  Table t({{"Bytes", Table::Align::kRight},
           {"Share", Table::Align::kRight},
           {"Allocations", Table::Align::kRight},
           {"Function"},
           {"Location"}});
  for (const Row& r : rows)
    t.add_row({human_bytes(static_cast<double>(r.bytes)), percent(r.bytes, m.view_bytes),
               human_count(static_cast<double>(r.count)), r.function,
               r.file.empty() ? base_name(r.module) : short_location(r.file, r.line)});
  t.render(out);
}

std::string utc(double unix_s) {
  if (unix_s <= 0) return "?";
  const time_t t = static_cast<time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// A moment of the capture: "850 us", "12 ms", "2.3 s", "4m 12s".
std::string offset_text(double s) {
  if (s < 1e-3) return fixed(s * 1e6, 0) + " us";
  if (s < 1) return fixed(s * 1e3, 0) + " ms";
  if (s < 60) return fixed(s, 1) + " s";
  return human_duration(s);
}

Json timeline_json(const ProfileModel& m) {
  Json points = Json::array();
  for (const TimePoint& p : m.timeline)
    points.push_back(Json{{"t_s", p.t_s}, {"live_bytes", p.live_bytes}, {"heap_bytes", p.heap_bytes},
                          {"rss_bytes", p.rss_bytes}});
  return Json{{"step_s", m.timeline_step_s}, {"points", std::move(points)}};
}

// One line of ASCII, `width` columns at most: each column the highest of the spans it covers.
std::string sparkline(const std::vector<TimePoint>& points, size_t width) {
  static constexpr char kLevels[] = " .:-=+*#%@";
  constexpr size_t kTop = sizeof kLevels - 2;
  if (points.empty()) return "";
  const size_t columns = std::min(width, points.size());
  std::vector<uint64_t> col(columns, 0);
  for (size_t i = 0; i < points.size(); ++i) {
    uint64_t& c = col[i * columns / points.size()];
    c = std::max(c, points[i].live_bytes);
  }
  const uint64_t top = *std::max_element(col.begin(), col.end());
  std::string out;
  for (uint64_t v : col)
    out += kLevels[v == 0 ? 0 : 1 + static_cast<size_t>(static_cast<double>(v) / static_cast<double>(top) * (kTop - 1))];
  return out;
}

Json capture_json(const ProfileModel& m, const ReportOptions& options) {
  Json threads = Json::array();
  for (const ProfileThread& t : m.threads)
    threads.push_back(
        Json{{"tid", t.tid}, {"name", t.name}, {"allocations", t.allocations}, {"bytes", t.bytes}});
  return Json{{"file", options.file},
              {"id", m.id},
              {"kind", m.kind},
              {"pid", m.pid},
              {"service", m.service},
              {"program", m.program},
              {"start_time", m.start_time},
              {"duration_s", m.duration_s},
              {"end_reason", m.end_reason.empty() ? Json(nullptr) : Json(m.end_reason)},
              {"truncated", m.truncated},
              {"file_truncated", m.file_truncated},
              {"view", view_name(m.view)},
              {"totals",
               {{"allocations", m.allocations},
                {"frees", m.frees},
                {"allocated_bytes", m.allocated_bytes},
                {"freed_bytes", m.freed_bytes},
                {"peak_bytes", m.peak_bytes},
                {"peak_time_s", m.peak_time_s},
                {"process_peak_heap_bytes", m.process_peak_heap_bytes},
                {"process_peak_rss_bytes", m.process_peak_rss_bytes},
                {"live_bytes_at_end", m.live_bytes_at_end},
                {"live_blocks_at_end", m.live_blocks_at_end},
                {"dropped_events", m.dropped_events}}},
              {"view_allocations", m.view_allocations},
              {"view_bytes", m.view_bytes},
              {"threads", threads},
              {"timeline", timeline_json(m)},
              {"warnings", m.warnings}};
}

void render_header(std::ostream& out, const ProfileModel& m) {
  out << "Capture " << (m.id.empty() ? "?" : m.id) << " (" << (m.kind.empty() ? "?" : m.kind)
      << "), pid " << m.pid;
  if (!m.service.empty()) out << " (" << m.service << ")";
  out << '\n';
  auto field = [&out](const std::string& label, const std::string& value) {
    out << "  " << label << std::string(label.size() < 14 ? 14 - label.size() : 1, ' ') << value
        << '\n';
  };
  if (!m.program.empty()) field("Program", m.program);
  std::string ran = utc(m.start_time) + ", ran " + human_span(m.duration_s);
  if (!m.end_reason.empty()) ran += ", ended: " + m.end_reason;
  if (m.truncated) ran += " (truncated)";
  field("Started", ran);
  field("Allocations", human_count(static_cast<double>(m.allocations)) + " (" +
                           human_bytes(static_cast<double>(m.allocated_bytes)) + ")");
  field("Frees", human_count(static_cast<double>(m.frees)) + " (" +
                     human_bytes(static_cast<double>(m.freed_bytes)) + ")");
  field("Peak memory", human_bytes(static_cast<double>(m.peak_bytes)) + " at " + offset_text(m.peak_time_s) +
                           " (of the blocks allocated during the capture)");
  if (m.process_peak_rss_bytes > 0)
    field("Process", "heap peak " + human_bytes(static_cast<double>(m.process_peak_heap_bytes)) + ", RSS peak " +
                         human_bytes(static_cast<double>(m.process_peak_rss_bytes)) + " (read every 100 ms)");
  field("Live at end", human_bytes(static_cast<double>(m.live_bytes_at_end)) + " in " +
                           human_count(static_cast<double>(m.live_blocks_at_end)) +
                           (m.live_blocks_at_end == 1 ? " block" : " blocks"));
  field("Threads", std::to_string(m.threads.size()));
  field("View", view_label(m.view) + ": " + human_count(static_cast<double>(m.view_allocations)) +
                    " allocations, " + human_bytes(static_cast<double>(m.view_bytes)));
}

// ---- tree ----

// A node's location: "file.cc:42", or the file alone when merged calls came from several lines.
std::string node_location(const CallTree& tree, uint32_t node) {
  const int line = tree.nodes()[node].line;
  const std::string where = short_location(tree.file(node), line > 0 ? line : 0);
  return line == CallTree::kSeveralLines && !where.empty() ? where + " (several lines)" : where;
}

// The bytes below which a call is summed into one line: --threshold percent of `total`.
uint64_t shown_from(uint64_t total, const ReportOptions& o) {
  return static_cast<uint64_t>(static_cast<double>(total) * o.threshold / 100.0);
}

// Of a node's `children`, those at `min_bytes` or more; the others' count and bytes.
std::vector<uint32_t> shown_children(const CallTree& tree, const std::vector<uint32_t>& children, uint64_t min_bytes,
                                     uint64_t* hidden_bytes, size_t* hidden) {
  std::vector<uint32_t> out;
  *hidden_bytes = 0;
  *hidden = 0;
  for (uint32_t c : children) {
    const uint64_t bytes = tree.nodes()[c].bytes;
    if (bytes >= min_bytes && bytes > 0) {
      out.push_back(c);
    } else {
      *hidden_bytes += bytes;
      ++*hidden;
    }
  }
  return out;
}

void render_node(std::ostream& out, const CallTree& tree, uint32_t node, const std::string& prefix, bool last,
                 int depth, const ReportOptions& o, uint64_t total, uint64_t min_bytes);

// The children of `node` (at `depth`) under `prefix`: each shown one with its subtree, then one
// line for those below the threshold, or a "--depth" line where the tree stops.
void render_children(std::ostream& out, const CallTree& tree, uint32_t node, const std::string& prefix, int depth,
                     const ReportOptions& o, uint64_t total, uint64_t min_bytes) {
  const std::vector<uint32_t> all = tree.children(node);
  if (o.depth > 0 && depth >= o.depth) {
    if (!all.empty()) out << prefix << "└── ... (--depth " << o.depth << ")\n";
    return;
  }
  uint64_t hidden_bytes = 0;
  size_t hidden = 0;
  const std::vector<uint32_t> kids = shown_children(tree, all, min_bytes, &hidden_bytes, &hidden);
  for (size_t i = 0; i < kids.size(); ++i)
    render_node(out, tree, kids[i], prefix, i + 1 == kids.size() && hidden == 0, depth + 1, o, total, min_bytes);
  if (hidden > 0)
    out << prefix << "└── " << human_bytes(static_cast<double>(hidden_bytes)) << " in " << hidden
        << (hidden == 1 ? " call" : " calls") << " below " << fixed(o.threshold, 1) << "%\n";
}

void render_node(std::ostream& out, const CallTree& tree, uint32_t node, const std::string& prefix, bool last,
                 int depth, const ReportOptions& o, uint64_t total, uint64_t min_bytes) {
  const CallTree::Node& n = tree.nodes()[node];
  out << prefix << (last ? "└── " : "├── ") << human_bytes(static_cast<double>(n.bytes)) << "  "
      << percent(n.bytes, total) << "  " << tree.function(node);
  const std::string where = node_location(tree, node);
  if (!where.empty()) out << "  " << where;
  out << '\n';
  render_children(out, tree, node, prefix + (last ? "    " : "│   "), depth, o, total, min_bytes);
}

Json node_json(const CallTree& tree, uint32_t node, int depth, const ReportOptions& o, uint64_t total,
               uint64_t min_bytes) {
  const CallTree::Node& n = tree.nodes()[node];
  const bool root = node == CallTree::kRoot;
  const std::string file = root ? "" : tree.file(node);
  Json j{{"function", root ? "[root]" : tree.function(node)},
         {"file", file.empty() ? Json(nullptr) : Json(file)},
         {"line", !root && n.line > 0 ? Json(n.line) : Json(nullptr)},
         {"several_lines", !root && n.line == CallTree::kSeveralLines},
         {"inlined", !root && tree.frames()[n.frame].inlined},
         {"bytes", n.bytes},
         {"count", n.count},
         {"share", share(n.bytes, total)}};
  Json kids = Json::array();
  uint64_t hidden_bytes = 0;
  size_t hidden = 0;
  const std::vector<uint32_t> all = tree.children(node);
  if (o.depth == 0 || depth < o.depth) {
    for (uint32_t c : shown_children(tree, all, min_bytes, &hidden_bytes, &hidden))
      kids.push_back(node_json(tree, c, depth + 1, o, total, min_bytes));
  } else {
    for (uint32_t c : all) hidden_bytes += tree.nodes()[c].bytes;
    hidden = all.size();
  }
  j["children"] = std::move(kids);
  j["hidden_children"] = hidden;
  j["hidden_bytes"] = hidden_bytes;
  return j;
}

// The call tree of `m` under `title`.
void render_tree(std::ostream& out, const ProfileModel& m, const ReportOptions& options, const std::string& title) {
  const CallTree tree(m);
  const CallTree::Node& root = tree.nodes()[CallTree::kRoot];
  out << title << '\n';
  out << human_bytes(static_cast<double>(root.bytes)) << "  100.0%  in "
      << human_count(static_cast<double>(root.count)) << (root.count == 1 ? " allocation\n" : " allocations\n");
  render_children(out, tree, CallTree::kRoot, "", 0, options, root.bytes, shown_from(root.bytes, options));
}

Json tree_json(const ProfileModel& m, const ReportOptions& options) {
  const CallTree tree(m);
  const uint64_t total = tree.nodes()[CallTree::kRoot].bytes;
  return node_json(tree, CallTree::kRoot, 0, options, total, shown_from(total, options));
}

std::string replace_suffix(const std::string& path, const std::string& suffix) {
  const std::string bin = ".bin";
  if (path.size() > bin.size() && path.compare(path.size() - bin.size(), bin.size(), bin) == 0)
    return path.substr(0, path.size() - bin.size()) + suffix;
  return path + suffix;
}

// Default output names keep the views apart: FILE.html, FILE-leaks.html, FILE-temporary.html.
std::string view_suffix(ProfileView view) {
  return view == ProfileView::kAll ? std::string() : std::string("-") + view_name(view);
}

// The flamegraph page of `m` to `out` ("-": stdout); `given`: named with -o.
int write_page(const std::string& out, bool given, const ProfileModel& m, Io io) {
  if (out == "-") {
    write_flamegraph_html(m, io.out);
    return kExitOk;
  }
  write_file(out, given, [&m](std::ostream& f) { write_flamegraph_html(m, f); });
  io.err << "wrote " << out << '\n';
  return kExitOk;
}

}  // namespace

// Writes a report to `path`. A name given with -o is the operator's: opened as asked. A name
// made up beside the capture (which may sit in a shared directory) must be, or become, a
// regular file: not a symlink planted there, nor a FIFO that would block the report.
void write_file(const std::string& path, bool given,
                const std::function<void(std::ostream&)>& write) {
  if (given) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw CtlError(kExitNotFound, "cannot write " + path + ": " + std::strerror(errno));
    write(f);
    f.flush();
    if (!f) throw CtlError(kExitNegative, "error writing " + path);
    return;
  }
  CreatedFile file = create_regular_file(path);
  if (!file.fd) throw CtlError(kExitNotFound, "cannot write " + path + ": " + file.why);
  FdStreambuf buf(file.fd.get());
  std::ostream f(&buf);
  write(f);
  f.flush();
  if (!f) throw CtlError(kExitNegative, "error writing " + path + ": " + std::strerror(errno));
}

int cmd_profile_summary(const GlobalOptions& g, const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io);
  const std::vector<Row> rows = top(aggregate(m, /*by_line=*/false), options.top);
  if (g.format == OutputFormat::kJson) {
    Json j = capture_json(m, options);
    Json functions = Json::array();
    for (const Row& r : rows) functions.push_back(row_json(r, m));
    j["top_functions"] = std::move(functions);
    io.out << j.dump(2) << '\n';
    return kExitOk;
  }
  render_header(io.out, m);
  io.out << "\nTop functions by bytes (" << view_label(m.view) << ")";
  if (rows.empty()) {
    io.out << ": none\n";
    return kExitOk;
  }
  io.out << ":\n";
  render_rows(io.out, rows, m);
  return kExitOk;
}

int cmd_profile_stats(const GlobalOptions& g, const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io);
  std::vector<Row> by_bytes = aggregate(m, /*by_line=*/false);
  std::vector<Row> by_count = by_bytes;
  std::stable_sort(by_count.begin(), by_count.end(), [](const Row& a, const Row& b) {
    return a.count != b.count ? a.count > b.count : a.bytes > b.bytes;
  });
  by_bytes = top(by_bytes, options.top);
  by_count = top(by_count, options.top);
  auto bucket_range = [](size_t k) -> std::pair<uint64_t, uint64_t> {
    if (k == 0) return {0, 0};
    return {uint64_t{1} << (k - 1), k >= 64 ? UINT64_MAX : (uint64_t{1} << k) - 1};
  };
  if (g.format == OutputFormat::kJson) {
    Json j = capture_json(m, options);
    Json hist = Json::array();
    for (size_t k = 0; k < m.size_histogram.size(); ++k) {
      if (m.size_histogram[k].count == 0) continue;
      const auto [lo, hi] = bucket_range(k);
      hist.push_back(Json{{"min_bytes", lo},
                          {"max_bytes", hi},
                          {"count", m.size_histogram[k].count},
                          {"bytes", m.size_histogram[k].bytes}});
    }
    j["size_histogram"] = std::move(hist);
    Json a = Json::array(), b = Json::array();
    for (const Row& r : by_count) a.push_back(row_json(r, m));
    for (const Row& r : by_bytes) b.push_back(row_json(r, m));
    j["top_by_count"] = std::move(a);
    j["top_by_bytes"] = std::move(b);
    io.out << j.dump(2) << '\n';
    return kExitOk;
  }
  render_header(io.out, m);
  if (!m.timeline.empty()) {
    io.out << "\nLive memory over the capture (blocks allocated during it; peak "
           << human_bytes(static_cast<double>(m.peak_bytes)) << " at " << offset_text(m.peak_time_s) << "):\n"
           << "  |" << sparkline(m.timeline, 64) << "|\n"
           << "  0" << std::string(62, ' ') << offset_text(m.duration_s) << '\n';
  }
  io.out << "\nAllocation sizes (" << view_label(m.view) << "):\n";
  uint64_t most = 0;
  for (const SizeBucket& b : m.size_histogram) most = std::max(most, b.count);
  Table hist({{"Size", Table::Align::kRight},
              {"Allocations", Table::Align::kRight},
              {"Bytes", Table::Align::kRight},
              {""}});
  for (size_t k = 0; k < m.size_histogram.size(); ++k) {
    const SizeBucket& b = m.size_histogram[k];
    if (b.count == 0) continue;
    const auto [lo, hi] = bucket_range(k);
    const std::string range = lo == hi ? human_bytes(static_cast<double>(lo))
                                       : human_bytes(static_cast<double>(lo)) + " - " +
                                             human_bytes(static_cast<double>(hi));
    const size_t bar = most == 0 ? 0 : static_cast<size_t>(40.0 * static_cast<double>(b.count) /
                                                           static_cast<double>(most) + 0.5);
    hist.add_row({range, human_count(static_cast<double>(b.count)),
                  human_bytes(static_cast<double>(b.bytes)), std::string(std::max<size_t>(bar, 1), '#')});
  }
  hist.render(io.out);
  io.out << "\nTop allocators by count:\n";
  render_rows(io.out, by_count, m);
  io.out << "\nTop allocators by bytes:\n";
  render_rows(io.out, by_bytes, m);
  io.out << "\nThreads:\n";
  Table threads({{"TID", Table::Align::kRight},
                 {"Allocations", Table::Align::kRight},
                 {"Bytes", Table::Align::kRight},
                 {"Name"}});
  for (const ProfileThread& t : m.threads)
    threads.add_row({std::to_string(t.tid), human_count(static_cast<double>(t.allocations)),
                     human_bytes(static_cast<double>(t.bytes)), t.name});
  threads.render(io.out);
  return kExitOk;
}

int cmd_profile_table(const GlobalOptions& g, const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io);
  const std::vector<Row> all = aggregate(m, /*by_line=*/true);
  const std::vector<Row> rows = top(all, options.top);
  if (g.format == OutputFormat::kJson) {
    Json j = capture_json(m, options);
    Json out = Json::array();
    for (const Row& r : rows) out.push_back(row_json(r, m));
    j["rows"] = std::move(out);
    j["total_rows"] = all.size();
    io.out << j.dump(2) << '\n';
    return kExitOk;
  }
  io.out << "Capture " << m.id << ": " << view_label(m.view) << ", "
         << human_count(static_cast<double>(m.view_allocations)) << " allocations, "
         << human_bytes(static_cast<double>(m.view_bytes)) << '\n';
  render_rows(io.out, rows, m);
  if (rows.size() < all.size())
    io.out << "... " << all.size() - rows.size() << " more rows (--top 0 shows all)\n";
  return kExitOk;
}

// The difference of two captures as a model: each stack's growth from `base` to `now` (or, with
// `grew` false, its shrinkage), stacks matched frame by frame (function, file, line, module,
// inlined), those that did not change left out. The rest of the model is `now`'s.
ProfileModel difference(const ProfileModel& base, const ProfileModel& now, bool grew) {
  struct Sides {
    const ProfileStack* stack = nullptr;
    int64_t bytes = 0, count = 0;
  };
  std::map<std::string, Sides> by_frames;
  for (const auto& [model, sign] : {std::pair{&base, -1}, std::pair{&now, 1}}) {
    for (const ProfileStack& s : model->stacks) {
      std::string key;
      for (const ProfileFrame& f : s.frames)
        key += f.function + '\x1f' + f.file + '\x1f' + std::to_string(f.line) + '\x1f' + f.module + (f.inlined ? "\x1fi\x1e" : "\x1e");
      Sides& d = by_frames[key];
      if (!d.stack || sign > 0) d.stack = &s;
      d.bytes += sign * static_cast<int64_t>(s.bytes);
      d.count += sign * static_cast<int64_t>(s.count);
    }
  }
  // Who and what view it is; none of NEW's own totals, timeline or threads: they are not the
  // difference's.
  ProfileModel out;
  out.id = (grew ? "growth from " : "shrinkage from ") + base.id + " to " + now.id;
  out.kind = "difference";
  out.service = now.service;
  out.program = now.program;
  out.pid = now.pid;
  out.hostname = now.hostname;
  out.view = now.view;
  out.modules = now.modules;
  for (const auto& [key, d] : by_frames) {
    const int64_t bytes = grew ? d.bytes : -d.bytes, count = grew ? d.count : -d.count;
    if (bytes <= 0 && (bytes < 0 || count <= 0)) continue;
    ProfileStack s = *d.stack;
    s.bytes = static_cast<uint64_t>(bytes);
    s.count = static_cast<uint64_t>(std::max<int64_t>(count, 0));
    out.view_bytes += s.bytes;
    out.view_allocations += s.count;
    out.stacks.push_back(std::move(s));
  }
  std::stable_sort(out.stacks.begin(), out.stacks.end(),
                   [](const ProfileStack& a, const ProfileStack& b) { return a.bytes > b.bytes; });
  return out;
}

int diff_as_tree(const GlobalOptions& g, const ReportOptions& options, const ProfileModel& base,
                 const ProfileModel& now, Io io) {
  const ProfileModel grew = difference(base, now, true), shrank = difference(base, now, false);
  if (g.format == OutputFormat::kJson) {
    io.out << Json{{"view", view_name(options.view)},
                   {"base", capture_json(base, options)},
                   {"new", capture_json(now, options)},
                   {"grew", tree_json(grew, options)},
                   {"shrank", tree_json(shrank, options)}}
                  .dump(2)
           << '\n';
    return kExitOk;
  }
  render_tree(io.out, grew, options, "Grew from " + base.id + " to " + now.id + ", " + view_label(options.view) + ":");
  io.out << '\n';
  render_tree(io.out, shrank, options, "Shrank:");
  return kExitOk;
}

int cmd_profile_diff(const GlobalOptions& g, const ReportOptions& options, Io io) {
  ReportOptions base_options = options;
  base_options.file = options.base;
  const ProfileModel base = load(base_options, io);
  const ProfileModel now = load(options, io);
  if (options.diff_as == "tree") return diff_as_tree(g, options, base, now, io);
  if (options.diff_as == "flamegraph") {
    const ProfileModel grew = difference(base, now, true);
    const std::string out = options.output.empty() ? replace_suffix(options.file, view_suffix(options.view) + "-diff.html")
                                                   : options.output;
    return write_page(out, !options.output.empty(), grew, io);
  }
  struct Change {
    Row row;
    uint64_t base_bytes = 0, base_count = 0, new_bytes = 0, new_count = 0;
    int64_t delta() const { return static_cast<int64_t>(new_bytes) - static_cast<int64_t>(base_bytes); }
    const char* status() const {
      if (base_count == 0) return "new";
      if (new_count == 0) return "gone";
      return new_bytes > base_bytes ? "grew" : new_bytes < base_bytes ? "shrank" : "same";
    }
  };
  std::map<std::string, Change> by_key;
  const auto key = [](const Row& r) { return r.function + '\x1f' + r.file + ':' + std::to_string(r.line); };
  for (const Row& r : aggregate(base, /*by_line=*/true)) {
    Change& c = by_key[key(r)];
    c.row = r;
    c.base_bytes = r.bytes;
    c.base_count = r.count;
  }
  for (const Row& r : aggregate(now, /*by_line=*/true)) {
    Change& c = by_key[key(r)];
    if (c.base_count == 0) c.row = r;
    c.new_bytes = r.bytes;
    c.new_count = r.count;
  }
  std::vector<Change> grew, shrank;
  for (auto& [k, c] : by_key) {
    if (c.delta() > 0 || (c.delta() == 0 && c.new_count > c.base_count)) grew.push_back(c);
    else if (c.delta() < 0 || c.new_count < c.base_count) shrank.push_back(c);
  }
  std::stable_sort(grew.begin(), grew.end(), [](const Change& a, const Change& b) { return a.delta() > b.delta(); });
  std::stable_sort(shrank.begin(), shrank.end(), [](const Change& a, const Change& b) { return a.delta() < b.delta(); });
  const size_t grew_all = grew.size(), shrank_all = shrank.size();
  if (options.top > 0) {
    grew.resize(std::min(grew.size(), static_cast<size_t>(options.top)));
    shrank.resize(std::min(shrank.size(), static_cast<size_t>(options.top)));
  }
  const int64_t total_delta = static_cast<int64_t>(now.view_bytes) - static_cast<int64_t>(base.view_bytes);
  if (g.format == OutputFormat::kJson) {
    const auto rows_json = [&](const std::vector<Change>& rows) {
      Json out = Json::array();
      for (const Change& c : rows)
        out.push_back(Json{{"function", c.row.function},
                           {"file", c.row.file.empty() ? Json(nullptr) : Json(c.row.file)},
                           {"line", c.row.line > 0 ? Json(c.row.line) : Json(nullptr)},
                           {"status", c.status()},
                           {"delta_bytes", c.delta()},
                           {"base_bytes", c.base_bytes},
                           {"new_bytes", c.new_bytes},
                           {"delta_count", static_cast<int64_t>(c.new_count) - static_cast<int64_t>(c.base_count)},
                           {"base_count", c.base_count},
                           {"new_count", c.new_count}});
      return out;
    };
    Json j{{"view", view_name(options.view)},
           {"base", capture_json(base, base_options)},
           {"new", capture_json(now, options)},
           {"delta_bytes", total_delta},
           {"delta_allocations", static_cast<int64_t>(now.view_allocations) - static_cast<int64_t>(base.view_allocations)},
           {"grew", rows_json(grew)},
           {"shrank", rows_json(shrank)},
           {"grew_rows", grew_all},
           {"shrank_rows", shrank_all}};
    io.out << j.dump(2) << '\n';
    return kExitOk;
  }
  io.out << "Diff of " << now.id << " (" << options.file << ")\n  against " << base.id << " ("
         << options.base << "), " << view_label(options.view) << '\n'
         << "  Bytes         " << human_bytes(static_cast<double>(base.view_bytes)) << " -> "
         << human_bytes(static_cast<double>(now.view_bytes)) << " ("
         << human_signed_bytes(static_cast<double>(total_delta)) << ")\n"
         << "  Allocations   " << human_count(static_cast<double>(base.view_allocations)) << " -> "
         << human_count(static_cast<double>(now.view_allocations)) << '\n';
  const auto render = [&](const char* title, const std::vector<Change>& rows, size_t all) {
    io.out << '\n' << title << ":\n";
    if (rows.empty()) {
      io.out << "  none\n";
      return;
    }
    Table t({{"Change", Table::Align::kRight},
             {"Base", Table::Align::kRight},
             {"New", Table::Align::kRight},
             {"Allocations", Table::Align::kRight},
             {"Function"},
             {"Location"},
             {""}});
    for (const Change& c : rows)
      t.add_row({human_signed_bytes(static_cast<double>(c.delta())), human_bytes(static_cast<double>(c.base_bytes)),
                 human_bytes(static_cast<double>(c.new_bytes)),
                 human_count(static_cast<double>(c.base_count)) + " -> " + human_count(static_cast<double>(c.new_count)),
                 c.row.function, c.row.file.empty() ? base_name(c.row.module) : short_location(c.row.file, c.row.line),
                 c.status()});
    t.render(io.out);
    if (rows.size() < all) io.out << "... " << all - rows.size() << " more (--top 0 shows all)\n";
  };
  render("Grew or new (largest growth first)", grew, grew_all);
  render("Shrank or gone", shrank, shrank_all);
  return kExitOk;
}

int cmd_profile_tree(const GlobalOptions& g, const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io);
  if (g.format == OutputFormat::kJson) {
    Json j = capture_json(m, options);
    j["tree"] = tree_json(m, options);
    io.out << j.dump(2) << '\n';
    return kExitOk;
  }
  render_tree(io.out, m, options, "Capture " + m.id + ": " + view_label(m.view));
  return kExitOk;
}

int cmd_profile_flamegraph(const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io, /*uses=*/true);
  const std::string out = options.output.empty()
                              ? replace_suffix(options.file, view_suffix(options.view) + ".html")
                              : options.output;
  return write_page(out, !options.output.empty(), m, io);
}

int cmd_profile_export(const ReportOptions& options, Io io) {
  const ProfileModel m = load(options, io);
  const bool pprof = options.export_format == "pprof";
  std::string out = options.output;
  if (out.empty()) out = pprof ? replace_suffix(options.file, view_suffix(options.view) + ".pb.gz") : "-";
  auto write = [&](std::ostream& f) {
    if (pprof)
      write_pprof(m, f);
    else
      write_folded(m, f, options.by_count);
  };
  if (out == "-") {
    write(io.out);
    return kExitOk;
  }
  write_file(out, !options.output.empty(), write);
  io.err << "wrote " << out << '\n';
  return kExitOk;
}

}  // namespace rsr::ctl
