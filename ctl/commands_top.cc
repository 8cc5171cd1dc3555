// `rsrmemctl top`: a live terminal view of monitored processes, refreshed in place: RSS and live
// heap with their history as sparklines, allocation rates, leak indicators, and the top call
// sites by live bytes, growth or allocation with the frame that names them. Keys: q quits, p
// pauses, l / g / a sort by live bytes / growth / allocated bytes, r refreshes now. When stdout
// is not a terminal it prints one plain frame and exits.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "commands.h"
#include "errors.h"
#include "format.h"
#include "site_stacks.h"

namespace rsr::ctl {
namespace {

constexpr size_t kHistory = 120;   // points of history kept per process
constexpr int kLeakEvery = 5;      // refreshes between leak checks
constexpr int kSitesAsked = 50;    // sites per list asked of each process

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_resized = 0;
void on_stop(int) { g_stop = 1; }
void on_resize(int) { g_resized = 1; }

enum class SortBy { kLive, kGrowth, kAllocated };

const char* sort_name(SortBy s) {
  switch (s) {
    case SortBy::kGrowth: return "growth";
    case SortBy::kAllocated: return "allocated";
    case SortBy::kLive: break;
  }
  return "live bytes";
}

// Eight levels per character, scaled between the series' low and high.
std::string sparkline(const std::deque<double>& values, size_t width) {
  static const char* const kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  if (values.empty() || width == 0) return "";
  const size_t n = std::min(values.size(), width);
  const auto begin = values.end() - static_cast<std::ptrdiff_t>(n);
  const auto [lo, hi] = std::minmax_element(begin, values.end());
  std::string out;
  for (auto it = begin; it != values.end(); ++it) {
    const double span = *hi - *lo;
    const int level = span > 0 ? static_cast<int>((*it - *lo) / span * 7.0 + 0.5) : 0;
    out += kBars[std::clamp(level, 0, 7)];
  }
  return out;
}

// Terminal columns of UTF-8 text (every character one column: the sparklines' blocks are).
size_t columns(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The first `width` columns of `s`, never cutting a character in two.
std::string cut(const std::string& s, size_t width) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && n++ == width) return s.substr(0, i);
  }
  return s;
}

// A cell of `width` columns: cut, or padded on the left (numbers) or the right (text).
std::string cell(const std::string& s, size_t width, bool right) {
  if (s.size() >= width) return s.substr(0, width);
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

struct Row {
  pid_t pid = 0;
  double live = 0, blocks = 0, allocated = 0, growth_per_s = 0;
  std::string name;
};

struct Process {
  Json summary;
  Json leaks;  // the last check_leaks reply (null: none yet, or refused)
  std::string leak_error;
  std::deque<double> rss, heap;
  std::shared_ptr<Symbolizer> symbolizer;
  std::map<uint64_t, std::string> names;  // site id -> the frame that names it
};

class Top {
 public:
  explicit Top(GlobalOptions g) : g_(std::move(g)) {}

  // Queries every targeted process once. Failures are kept for the status line.
  void refresh() {
    problems_.clear();
    const bool check = tick_++ % kLeakEvery == 0;
    std::set<pid_t> seen;
    std::vector<TargetResult> results;
    try {
      results = collect(g_, [&](const Target& target, const Client& client) {
      Json summary = client.request(Json{{"cmd", "summary"}, {"top", kSitesAsked}});
      const auto pid = static_cast<pid_t>(num(summary, "pid", target.pid));
      Process& p = procs_[pid];
      seen.insert(pid);
      std::shared_ptr<Symbolizer> symbolizer = symbolizers_.get(summary, target.pid);
      if (symbolizer != p.symbolizer) {  // a new module map: the names are made again
        p.symbolizer = std::move(symbolizer);
        p.names.clear();
      }
      set_allocator_wrappers(str(summary, "allocator_wrappers"));
      for (const char* list : {"top_live", "top_growth"})
        for (const Json& site : member(summary, list)) {
          const auto id = static_cast<uint64_t>(num(site, "id"));
          if (p.names.count(id)) continue;
          const UserFrame u = first_user_frame(symbolize_site(site, *p.symbolizer));
          p.names[id] = u.found ? user_frame_label(u) : "[no frames]";
        }
      push(p.rss, num(summary, "rss_bytes"));
      push(p.heap, num(member(summary, "heap"), "live_bytes"));
      p.summary = std::move(summary);
      if (check) {
        try {
          p.leaks = client.request("check_leaks");
          p.leak_error.clear();
        } catch (const CtlError& e) {
          p.leaks = Json();
          p.leak_error = e.what();
        }
      }
      return Outcome{};
      });
    } catch (const CtlError& e) {
      // No process (yet, or any more), or several where one was meant: said, and tried again.
      problems_.push_back(e.what());
    }
    for (const TargetResult& r : results)
      if (r.state != TargetResult::State::kOk) problems_.push_back(r.message);
    for (auto it = procs_.begin(); it != procs_.end();)
      it = seen.count(it->first) ? std::next(it) : procs_.erase(it);
    symbolizers_.keep_only(seen);
  }

  std::vector<std::string> render(size_t width, size_t height, bool live) const {
    std::vector<std::string> out;
    std::ostringstream title;
    title << "rsrmem top: " << procs_.size() << (procs_.size() == 1 ? " process" : " processes")
          << ", every " << fixed(interval_s_, interval_s_ < 10 ? 1 : 0) << " s, sorted by "
          << sort_name(sort_);
    if (paused_) title << "  [paused]";
    if (live) title << "   q quit  p pause  l/g/a sort  r refresh";
    out.push_back(title.str());
    std::vector<Row> rows;
    const size_t spark = width > 100 ? 30 : 16;
    for (const auto& [pid, p] : procs_) {
      const Json& s = p.summary;
      const Json& heap = member(s, "heap");
      const Json& rates = member(s, "rates");
      out.push_back("");
      out.push_back(process_label(s, pid) + "  up " + human_duration(num(s, "uptime_s")) + "  " +
                    str(member(s, "sampling"), "mode") + "  " + str(s, "program"));
      out.push_back("  RSS  " + cell(human_bytes(num(s, "rss_bytes")), 10, true) + "  " +
                    sparkline(p.rss, spark) + "   peak " + human_bytes(num(s, "peak_rss_bytes")));
      out.push_back("  heap " + cell(human_bytes(num(heap, "live_bytes")), 10, true) + "  " +
                    sparkline(p.heap, spark) + "   " + human_count(num(heap, "live_blocks")) +
                    " blocks, peak " + human_bytes(num(heap, "peak_live_bytes")));
      out.push_back("  rate " + human_count(num(rates, "allocations_per_s")) + " allocs/s, " +
                    human_count(num(rates, "frees_per_s")) + " frees/s, " +
                    human_bytes(num(rates, "allocated_bytes_per_s")) + "/s allocated, live " +
                    human_signed_bytes(num(rates, "live_bytes_per_s")) + "/s");
      out.push_back("  leaks " + leak_line(p));
      std::set<uint64_t> listed;
      for (const char* list : {"top_live", "top_growth"})
        for (const Json& site : member(s, list)) {
          const auto id = static_cast<uint64_t>(num(site, "id"));
          if (!listed.insert(id).second) continue;
          auto name = p.names.find(id);
          rows.push_back({pid, num(site, "live_bytes"), num(site, "live_blocks"),
                          num(site, "alloc_bytes"), num(site, "growth_bytes_per_s"),
                          name == p.names.end() ? "?" : name->second});
        }
    }
    for (const std::string& problem : problems_) out.push_back("! " + problem);
    std::sort(rows.begin(), rows.end(), [this](const Row& a, const Row& b) {
      switch (sort_) {
        case SortBy::kGrowth: return a.growth_per_s > b.growth_per_s;
        case SortBy::kAllocated: return a.allocated > b.allocated;
        case SortBy::kLive: break;
      }
      return a.live > b.live;
    });
    const bool several = procs_.size() > 1;
    out.push_back("");
    out.push_back((several ? cell("PID", 8, false) : std::string()) + cell("LIVE", 10, true) +
                  cell("BLOCKS", 9, true) + cell("GROWTH/s", 12, true) +
                  cell("ALLOCATED", 11, true) + "  CALL SITE (estimates from samples)");
    for (const Row& r : rows) {
      if (out.size() >= height) break;
      out.push_back((several ? cell(std::to_string(r.pid), 8, false) : std::string()) +
                    cell(human_bytes(r.live), 10, true) + cell(human_count(r.blocks), 9, true) +
                    cell(human_signed_bytes(r.growth_per_s), 12, true) +
                    cell(human_bytes(r.allocated), 11, true) + "  " + r.name);
    }
    if (rows.empty()) out.push_back("  (no call site sampled yet)");
    for (std::string& line : out)
      if (columns(line) > width) line = cut(line, width);
    return out;
  }

  // A key pressed; false to quit.
  bool key(char c) {
    switch (c) {
      case 'q': case 'Q': case 3: return false;
      case 'p': case 'P': paused_ = !paused_; break;
      case 'l': case 'L': sort_ = SortBy::kLive; break;
      case 'g': case 'G': sort_ = SortBy::kGrowth; break;
      case 'a': case 'A': sort_ = SortBy::kAllocated; break;
      default: break;
    }
    return true;
  }
  bool paused() const { return paused_; }
  void set_interval(double s) { interval_s_ = s; }

 private:
  static void push(std::deque<double>& d, double v) {
    d.push_back(v);
    if (d.size() > kHistory) d.pop_front();
  }

  static std::string leak_line(const Process& p) {
    if (!p.leak_error.empty()) return "not checked: " + p.leak_error;
    if (p.leaks.is_null()) return "not checked yet";
    const Json& found = member(p.leaks, "indicators");
    if (found.empty())
      return "none found (judged on " + human_span(num(p.leaks, "observed_s")) + ")";
    const Json& first = found.front();
    std::string line = std::to_string(found.size()) + " indicator" + (found.size() == 1 ? "" : "s") +
                       ": " + str(first, "type") + " " + str(first, "severity");
    const auto id = static_cast<uint64_t>(num(member(first, "site"), "id", -1));
    if (auto name = p.names.find(id); name != p.names.end()) line += " at " + name->second;
    return line + " (rsrmemctl check-leaks for details)";
  }

  const GlobalOptions g_;
  ProcessSymbolizers symbolizers_;
  std::map<pid_t, Process> procs_;
  std::vector<std::string> problems_;
  SortBy sort_ = SortBy::kLive;
  bool paused_ = false;
  int tick_ = 0;
  double interval_s_ = 2;
};

// Raw keys, the alternate screen and a hidden cursor for the object's lifetime.
class Terminal {
 public:
  Terminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO | ISIG));
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      raw_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    write_all("\x1b[?1049h\x1b[?25l");
  }
  ~Terminal() {
    write_all("\x1b[?25h\x1b[?1049l");
    if (raw_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  static void write_all(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = write(STDOUT_FILENO, s.data() + done, s.size() - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  static std::pair<size_t, size_t> size() {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0)
      return {ws.ws_col, ws.ws_row};
    return {120, 40};
  }

 private:
  termios saved_{};
  bool raw_ = false;
};

}  // namespace

int cmd_top(const GlobalOptions& g, const TopOptions& options, Io io) {
  Top top(g);
  top.set_interval(options.interval_s);
  if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
    top.refresh();
    for (const std::string& line : top.render(160, 60, /*live=*/false)) io.out << line << '\n';
    return kExitOk;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = on_resize;
  sigaction(SIGWINCH, &sa, nullptr);
  const Terminal terminal;
  auto next = std::chrono::steady_clock::now();
  bool draw = true;
  while (!g_stop) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next) {
      if (!top.paused()) top.refresh();
      next = now + std::chrono::milliseconds(static_cast<long long>(options.interval_s * 1000));
      draw = true;
    }
    if (draw || g_resized) {
      g_resized = 0;
      const auto [width, height] = Terminal::size();
      std::string frame = "\x1b[H";
      for (const std::string& line : top.render(width, height - 1, /*live=*/true))
        frame += line + "\x1b[K\r\n";
      frame += "\x1b[J";
      Terminal::write_all(frame);
      draw = false;
    }
    pollfd in{STDIN_FILENO, POLLIN, 0};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::steady_clock::now());
    if (poll(&in, 1, static_cast<int>(std::max<long long>(0, wait.count()))) > 0) {
      char keys[16];
      const ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
      if (n == 0) return kExitOk;  // the terminal is gone
      for (ssize_t i = 0; i < n; ++i) {
        if (!top.key(keys[i])) return kExitOk;
        if (keys[i] == 'r' || keys[i] == 'R') next = std::chrono::steady_clock::now();
        draw = true;
      }
    }
  }
  return kExitOk;
}

}  // namespace rsr::ctl
