// Profiling captures end to end: a program with known allocation sites runs under the preload,
// captures are started and stopped through the control socket, and the files are decoded here
// (libzstd + common/capture_format.h) and checked record by record.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "capture_format.h"
#include "harness.h"

namespace {

using nlohmann::json;
using rt::Process;
using rt::Reply;
using rt::Spawn;
using rt::TempDir;
using rt::run_text;
namespace cap = rsr::capture;
using Env = std::map<std::string, std::string>;

constexpr int kLineMs = 20000;
constexpr int kSocketMs = 10000;

// ---------------------------------------------------------------------------------------------
// Decoding

// Blocks are named by their ALLOC's position in the file (from 1), as FREE records name them.
struct Alloc {
  int64_t t;
  uint64_t tid, id, size, stack;
};
struct Free {
  int64_t t;
  uint64_t tid, id;
};
struct Module {
  uint64_t start, end, base;
  std::string path, build_id;
};

struct Capture {
  bool header_ok = false;
  bool truncated_stream = false;
  json header, end;
  bool has_end = false;
  std::vector<Module> modules;
  std::map<uint64_t, std::vector<uint64_t>> stacks;
  std::map<uint64_t, std::string> threads;
  std::vector<Alloc> allocs;
  std::vector<Free> frees;
  std::vector<std::tuple<int64_t, uint64_t, uint64_t>> counters;  // (time, heap, rss)
  std::vector<std::string> problems;  // ordering violations
};

Capture decode(const std::string& path) {
  Capture c;
  const std::string bytes = rt::read_file(path);
  uint16_t version = 0, compression = 0;
  if (!cap::decode_file_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &version, &compression))
    return c;
  c.header_ok = version == cap::kVersion && compression == cap::kCompressionZstd;
  std::string stream;
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZSTD_inBuffer in{bytes.data() + cap::kFileHeaderBytes, bytes.size() - cap::kFileHeaderBytes, 0};
  std::vector<char> out(1 << 20);
  size_t last = 0;
  while (in.pos < in.size) {
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    last = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(last)) {
      c.truncated_stream = true;
      break;
    }
    stream.append(out.data(), o.pos);
  }
  if (last != 0) c.truncated_stream = true;
  ZSTD_freeDCtx(d);
  cap::RecordReader r(reinterpret_cast<const uint8_t*>(stream.data()), stream.size());
  cap::Record type;
  cap::Fields f(nullptr, 0);
  int64_t units = 0;
  uint64_t tid = 0;
  bool first = true;
  std::vector<std::pair<uint64_t, uint64_t>> infos;  // (size, stack)
  std::set<uint64_t> live;
  std::map<uint64_t, std::vector<uint64_t>> by_pair;  // pair -> its blocks' ids, in ALLOC order
  std::deque<std::pair<int64_t, uint64_t>> times;      // TIMES entries not yet reached
  int64_t times_end = 0;
  uint64_t left = 0;
  // The next ALLOC or FREE record's time, from the TIMES entries.
  auto next_time = [&] {
    if (left == 0) {
      if (times.empty()) {
        c.problems.push_back("an event beyond its TIMES entries");
        return;
      }
      units = times.front().first;
      left = times.front().second;
      times.pop_front();
    }
    --left;
  };
  while (r.next(&type, &f)) {
    std::string_view s;
    uint64_t a = 0, b = 0;
    if (first && type != cap::Record::kHeader) c.problems.push_back("first record is not HEADER");
    first = false;
    if (c.has_end) c.problems.push_back("record after END");
    const int64_t unit = c.header.is_object() ? c.header.value("time_unit_ns", int64_t{1}) : 1;
    switch (type) {
      case cap::Record::kHeader:
        f.str(&s);
        c.header = json::parse(s);
        break;
      case cap::Record::kEnd:
        f.str(&s);
        c.end = json::parse(s);
        c.has_end = true;
        break;
      case cap::Record::kModule: {
        Module m;
        std::string_view p, id;
        f.v(&m.start) && f.v(&m.end) && f.v(&m.base) && f.str(&p) && f.str(&id);
        m.path = std::string(p);
        m.build_id = std::string(id);
        c.modules.push_back(m);
        break;
      }
      case cap::Record::kStack: {
        uint64_t id = 0, n = 0;
        f.v(&id) && f.v(&n);
        std::vector<uint64_t> frames(n);
        for (auto& fr : frames) f.v(&fr);
        if (c.stacks.count(id)) c.problems.push_back("stack written twice");
        c.stacks[id] = frames;
        break;
      }
      case cap::Record::kThread:
        f.v(&a);
        f.str(&s);
        c.threads[a] = std::string(s);
        break;
      case cap::Record::kTimes: {
        uint64_t n = 0;
        if (!f.v(&n)) c.problems.push_back("malformed TIMES");
        for (uint64_t i = 0; i < n; ++i) {
          if (!f.v(&a) || !f.v(&b) || b == 0) c.problems.push_back("malformed TIMES entry");
          times_end += static_cast<int64_t>(a);
          times.emplace_back(times_end, b);
        }
        break;
      }
      case cap::Record::kSwitch:
        if (!f.v(&tid)) c.problems.push_back("malformed SWITCH");
        if (!c.threads.count(tid)) c.problems.push_back("SWITCH before its THREAD");
        break;
      case cap::Record::kInfo:
        if (!f.v(&a) || !f.v(&b)) c.problems.push_back("malformed INFO");
        if (b != 0 && !c.stacks.count(b)) c.problems.push_back("INFO before its STACK");
        infos.emplace_back(a, b);
        break;
      case cap::Record::kAlloc: {
        if (!f.v(&a) || a == 0 || a > infos.size()) {
          c.problems.push_back("malformed ALLOC");
          break;
        }
        const uint64_t id = c.allocs.size() + 1;
        next_time();
        c.allocs.push_back({units * unit, tid, id, infos[a - 1].first, infos[a - 1].second});
        live.insert(id);
        by_pair[a].push_back(id);
        break;
      }
      case cap::Record::kFree:
      case cap::Record::kFreeLatest: {
        // The block: pair a's ALLOC b back (1: the pair's latest).
        b = 1;
        if (!f.v(&a) || (type == cap::Record::kFree && !f.v(&b)) || b == 0 || b > by_pair[a].size() || !live.erase(by_pair[a][by_pair[a].size() - b])) {
          c.problems.push_back("FREE of a block that is not live");
          break;
        }
        next_time();
        c.frees.push_back({units * unit, tid, by_pair[a][by_pair[a].size() - b]});
        break;
      }
      case cap::Record::kCounters: {
        uint64_t at = 0;
        if (!f.v(&at) || !f.v(&a) || !f.v(&b)) c.problems.push_back("malformed COUNTERS");
        c.counters.emplace_back(static_cast<int64_t>(at) * unit, a, b);
        break;
      }
      default:
        c.problems.push_back("unknown record type " + std::to_string(static_cast<int>(type)));
    }
  }
  if (r.truncated()) c.truncated_stream = true;
  return c;
}

// Blocks allocated during the capture and not freed by its end, by id.
std::map<uint64_t, Alloc> live_at_end(const Capture& c) {
  std::map<uint64_t, Alloc> live;
  for (const Alloc& a : c.allocs) live[a.id] = a;
  for (const Free& f : c.frees) live.erase(f.id);
  return live;
}

// ---------------------------------------------------------------------------------------------
// The program

struct Symbol {
  uint64_t addr = 0, size = 0;  // runtime address and size
  bool holds(uint64_t pc) const { return pc >= addr && pc < addr + size; }
};

uint64_t field_hex(const std::string& line, const std::string& key) {
  const size_t at = line.find(key + "=");
  if (at == std::string::npos) return 0;
  return std::stoull(line.substr(at + key.size() + 1), nullptr, 0);
}

// Function sizes from nm, placed at their runtime addresses.
std::map<std::string, Symbol> symbols(const std::string& program, const std::string& ready) {
  std::map<std::string, Symbol> out;
  const char* nm = getenv("RSR_TEST_NM");
  std::istringstream in(run_text(std::string(nm ? nm : "nm") + " -S --defined-only " + program));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string a, sz, kind, name;
    if (!(f >> a >> sz >> kind >> name)) continue;
    if (name != "alloc_pages" && name != "make_names" && name != "touch_few" && name != "scoped_work") continue;
    out[name] = Symbol{field_hex(ready, name), std::stoull(sz, nullptr, 16)};
  }
  return out;
}

std::string build_id_of(const std::string& program) {
  const char* readelf = getenv("RSR_TEST_READELF");
  const std::string text = run_text(std::string(readelf ? readelf : "readelf") + " -n " + program);
  const size_t at = text.find("Build ID: ");
  if (at == std::string::npos) return "";
  std::string id = text.substr(at + 10);
  return id.substr(0, id.find_first_of(" \n"));
}

bool stack_has(const Capture& c, uint64_t stack, const Symbol& fn) {
  auto it = c.stacks.find(stack);
  if (it == c.stacks.end()) return false;
  for (uint64_t pc : it->second)
    if (fn.holds(pc)) return true;
  return false;
}

struct Service {
  TempDir dir{"rsrprof"};
  std::string out_dir;
  Process p;
  std::string ready;

  explicit Service(std::map<std::string, std::string> env = {}, bool enabled = true) {
    out_dir = dir / "profiles";
    Spawn s;
    s.argv = {rt::program("profiled")};
    s.socket_dir = dir.path();
    s.env = {{"RSR_PROFILING_OUTPUT_DIR", out_dir}};
    if (enabled) s.env["RSR_PROFILING_ENABLED"] = "true";
    for (auto& [k, v] : env) s.env[k] = v;
    p = Process(s);
    EXPECT_TRUE(p.started());
    ready = p.read_line(kLineMs).value_or("");
    EXPECT_EQ(ready.rfind("ready ", 0), 0u) << p.describe();
    Reply hello;
    EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
  }

  Reply ask(const json& request) { return rt::query(rt::socket_path(dir.path(), p.pid()), request.dump(), 10000); }

  std::string line(const std::string& command, const std::string& prefix) {
    p.write(command + "\n");
    return p.read_until([&](const std::string& l) { return l.rfind(prefix, 0) == 0; }, kLineMs).value_or("");
  }

  json start(double seconds) {
    Reply r = ask({{"cmd", "start_profiling"}, {"duration_s", seconds}});
    EXPECT_TRUE(r.served()) << r.describe();
    return r.json;
  }

  // Waits until no capture is active.
  bool wait_idle(int ms) {
    for (int waited = 0; waited < ms; waited += 50) {
      Reply r = ask({{"cmd", "status"}});
      if (r.served() && r.json["profilers"].empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::vector<std::string> files() { return rt::list_dir(out_dir); }
};

// ---------------------------------------------------------------------------------------------

TEST(Profiling, CapturesKnownSitesExactly) {
  Service s;
  const std::string program = rt::program("profiled");
  const auto syms = symbols(program, s.ready);
  ASSERT_EQ(syms.size(), 4u) << s.ready;
  const uint64_t usable4096 = field_hex(s.ready, "usable4096");
  const uint64_t usable100 = field_hex(s.ready, "usable100");

  // The exact counters of one run without a capture and of one with it must agree.
  ASSERT_FALSE(s.line("run", "done").empty());  // warm-up: thread stacks and caches settle
  Reply before = rt::summary(s.dir.path(), s.p.pid(), 0);
  ASSERT_FALSE(s.line("run", "done").empty());
  Reply middle = rt::summary(s.dir.path(), s.p.pid(), 0);

  const json started = s.start(60);
  ASSERT_TRUE(started.contains("id")) << started.dump();
  const std::string id = started["id"];
  const std::string path = started["path"];
  EXPECT_EQ(id.rfind("background_", 0), 0u);
  EXPECT_EQ(path.rfind(s.out_dir + "/profile_", 0), 0u) << path;
  EXPECT_NE(path.find("_" + std::to_string(s.p.pid()) + ".bin"), std::string::npos) << path;
  EXPECT_EQ(started["max_bytes"], 100ull << 20);

  Reply status = s.ask({{"cmd", "status"}});
  ASSERT_EQ(status.json["profilers"].size(), 1u) << status.payload;
  EXPECT_EQ(status.json["profilers"][0]["id"], id);
  EXPECT_EQ(status.json["profilers"][0]["kind"], "background");
  Reply metrics = s.ask({{"cmd", "metrics"}});
  EXPECT_EQ(metrics.json["profiling"]["active"], 1) << metrics.payload;
  Reply health = s.ask({{"cmd", "health"}});
  EXPECT_EQ(health.json["components"]["profiling"]["status"], "ok") << health.payload;

  // A second one is refused, naming the running one.
  Reply again = s.ask({{"cmd", "start_profiling"}, {"duration_s", 5}});
  EXPECT_EQ(again.kind, rsr::proto::Kind::kError);
  EXPECT_NE(again.json.value("error", "").find(id), std::string::npos) << again.payload;

  const std::string done = s.line("run", "done");
  ASSERT_FALSE(done.empty());
  Reply after = rt::summary(s.dir.path(), s.p.pid(), 0);
  std::istringstream dl(done.substr(5));
  uint64_t tid_pages, tid_names, tid_few;
  dl >> tid_pages >> tid_names >> tid_few;

  Reply stop = s.ask({{"cmd", "stop_profiling"}, {"id", id}});
  ASSERT_TRUE(stop.served()) << stop.describe();
  EXPECT_EQ(stop.json["stopped"]["id"], id);
  EXPECT_EQ(stop.json["stopped"]["path"], path);
  EXPECT_EQ(stop.json["stopped"]["reason"], "stopped");
  EXPECT_EQ(stop.json["stopped"]["dropped_events"], 0);
  EXPECT_TRUE(s.ask({{"cmd", "status"}}).json["profilers"].empty());

  for (const char* f : {"allocations", "frees", "allocated_bytes", "freed_bytes", "live_bytes"})
    EXPECT_EQ(rt::heap_field(after, f) - rt::heap_field(middle, f), rt::heap_field(middle, f) - rt::heap_field(before, f))
        << f;

  // Files: 0600 in a 0700 directory, no .part left.
  struct stat st{};
  ASSERT_EQ(stat(s.out_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (const std::string& name : s.files()) EXPECT_EQ(name.find(".part"), std::string::npos) << name;
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), stop.json["stopped"]["bytes"].get<uint64_t>());

  const Capture c = decode(path);
  ASSERT_TRUE(c.header_ok);
  EXPECT_FALSE(c.truncated_stream);
  EXPECT_TRUE(c.problems.empty()) << c.problems.front();
  EXPECT_EQ(c.header["format"], "rsrmem-capture");
  EXPECT_EQ(c.header["kind"], "background");
  EXPECT_EQ(c.header["id"], id);
  EXPECT_EQ(c.header["pid"], s.p.pid());
  EXPECT_EQ(c.header["duration_s"], 60.0);
  ASSERT_TRUE(c.has_end);
  EXPECT_EQ(c.end["reason"], "stopped");
  EXPECT_EQ(c.end["truncated"], false);
  EXPECT_EQ(c.end["events"], c.allocs.size() + c.frees.size());
  EXPECT_EQ(stop.json["stopped"]["events"], c.allocs.size() + c.frees.size());

  // Sites.
  uint64_t pages = 0, pages_bytes = 0, names = 0, names_bytes = 0, few = 0;
  std::set<uint64_t> names_addr;
  for (const Alloc& a : c.allocs) {
    if (stack_has(c, a.stack, syms.at("alloc_pages"))) {
      ++pages;
      pages_bytes += a.size;
      EXPECT_EQ(a.tid, tid_pages);
    } else if (stack_has(c, a.stack, syms.at("make_names"))) {
      ++names;
      names_bytes += a.size;
      names_addr.insert(a.id);
      EXPECT_EQ(a.tid, tid_names);
    } else if (stack_has(c, a.stack, syms.at("touch_few"))) {
      ++few;
    }
  }
  EXPECT_EQ(pages, 1000u);
  EXPECT_EQ(pages_bytes, 1000 * usable4096);
  EXPECT_EQ(names, 500u);
  EXPECT_EQ(names_bytes, 500 * usable100);
  EXPECT_EQ(few, 10u);
  uint64_t names_frees = 0;
  for (const Free& f : c.frees)
    if (f.tid == tid_names && names_addr.count(f.id)) ++names_frees;
  EXPECT_EQ(names_frees, 500u);

  // Threads and modules.
  for (uint64_t tid : {tid_pages, tid_names, tid_few}) EXPECT_TRUE(c.threads.count(tid)) << tid;
  const std::string want_id = build_id_of(program);
  ASSERT_FALSE(want_id.empty());
  bool found_program = false;
  for (const Module& m : c.modules) {
    if (m.path == program) {
      found_program = true;
      EXPECT_EQ(m.build_id, want_id);
      EXPECT_TRUE(syms.at("alloc_pages").addr >= m.start && syms.at("alloc_pages").addr < m.end);
    }
  }
  EXPECT_TRUE(found_program);

  // Still live at the end: exactly the pages.
  uint64_t live_pages = 0, live_names = 0;
  for (const auto& [addr, a] : live_at_end(c)) {
    if (stack_has(c, a.stack, syms.at("alloc_pages"))) ++live_pages;
    if (stack_has(c, a.stack, syms.at("make_names")) || stack_has(c, a.stack, syms.at("touch_few"))) ++live_names;
  }
  EXPECT_EQ(live_pages, 1000u);
  EXPECT_EQ(live_names, 0u);
}

// libzstd is loaded at the first capture, not at start: a process that never captures never maps
// it (one shared object fewer to load and relocate in every process).
TEST(Profiling, CompressionIsLoadedAtTheFirstCapture) {
  Service s;
  EXPECT_FALSE(rt::maps_contain(s.p.pid(), "libzstd")) << "libzstd mapped before any capture";
  const json started = s.start(120);
  ASSERT_TRUE(started.contains("id")) << started.dump();
  EXPECT_TRUE(rt::maps_contain(s.p.pid(), "libzstd"));
  const Reply stop = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  ASSERT_TRUE(stop.served()) << stop.describe();
  const Capture c = decode(started["path"]);
  EXPECT_TRUE(c.has_end);
}

TEST(Profiling, RefusesBadRequests) {
  Service s;
  Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", "background_123"}});
  EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
  EXPECT_EQ(r.json.value("error", ""), "no active profiling capture 'background_123'");
  for (const char* bad : {"../../etc/passwd", "background_", "profile_1", "scope_a/b", ""}) {
    r = s.ask({{"cmd", "stop_profiling"}, {"id", bad}});
    EXPECT_EQ(r.kind, rsr::proto::Kind::kError) << bad;
    EXPECT_EQ(r.json.value("error", ""), "invalid profile id") << bad;
  }
  for (const json& d : {json(0), json(-1), json(7 * 86400 + 1), json("10"), json(nullptr)}) {  // 7 days at most
    r = s.ask({{"cmd", "start_profiling"}, {"duration_s", d}});
    EXPECT_EQ(r.kind, rsr::proto::Kind::kError) << d;
    EXPECT_NE(r.json.value("error", "").find("duration_s"), std::string::npos) << r.payload;
  }
  r = s.ask({{"cmd", "stop_profiling"}});
  ASSERT_TRUE(r.served());
  EXPECT_TRUE(r.json["profilers"].empty());
  EXPECT_TRUE(rt::summary(s.dir.path(), s.p.pid(), 0).served());
}

TEST(Profiling, DisabledIsRefusedNamingTheSetting) {
  Service s({}, false);
  Reply r = s.ask({{"cmd", "start_profiling"}, {"duration_s", 1}});
  EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
  EXPECT_NE(r.json.value("error", "").find("RSR_PROFILING_ENABLED"), std::string::npos) << r.payload;
  Reply h = s.ask({{"cmd", "health"}});
  EXPECT_EQ(h.json["components"]["profiling"]["status"], "disabled") << h.payload;
  Reply m = s.ask({{"cmd", "metrics"}});
  EXPECT_EQ(m.json["profiling"]["active"], 0);
  EXPECT_EQ(m.json["profiling"]["enabled"], false);
  EXPECT_TRUE(s.files().empty());
}

// An output directory with captures of every age and files that only look like them.
struct OldCaptures {
  TempDir base{"rsrcleanup"};
  std::string out = base / "profiles";
  OldCaptures() {
    EXPECT_EQ(mkdir(out.c_str(), 0700), 0);
    const std::string magic(cap::kMagic, sizeof cap::kMagic);
    file("profile_20200101_000000_1.bin", magic + "frames", 10);
    file("scope_req_20200101_000000_1_1.bin", magic, 8);
    file("profile_20200101_000000_2.bin.part", magic, 9);
    file("profile_20260101_000000_3.bin", magic, 6);           // younger than 7 days
    file("profile_20200101_000000_4.bin", "not a capture", 10);  // no magic
    file("notes.bin", magic, 10);                              // not a capture's name
    file("report.html", "<html>", 10);
    file("../outside_1.bin", magic, 10);
    EXPECT_EQ(symlink((base / "outside_1.bin").c_str(), (out + "/profile_20200101_000000_5.bin").c_str()), 0);
  }
  void file(const std::string& name, const std::string& content, int days_old) {
    const std::string path = out + "/" + name;
    rt::write_file(path, content, 0600);
    const time_t when = time(nullptr) - days_old * 86400;
    const timespec t[2] = {{when, 0}, {when, 0}};
    EXPECT_EQ(utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  }
  std::set<std::string> names() {
    const std::vector<std::string> v = rt::list_dir(out);
    return {v.begin(), v.end()};
  }
};

TEST(Profiling, CapturesOlderThanTheCleanupDaysAreRemovedByTheLibrary) {
  OldCaptures old;
  Service s(Env{{"RSR_PROFILING_OUTPUT_DIR", old.out}, {"RSR_PROFILING_CLEANUP_DAYS", "7"}});
  const std::set<std::string> kept = {"profile_20260101_000000_3.bin", "profile_20200101_000000_4.bin",
                                      "notes.bin", "report.html", "profile_20200101_000000_5.bin"};
  for (int waited = 0; old.names() != kept && waited < 5000; waited += 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(old.names(), kept);
  struct stat st{};
  EXPECT_EQ(stat((old.base / "outside_1.bin").c_str(), &st), 0) << "a symlink's target is never removed";
}

TEST(Profiling, CleanupDaysZeroRemovesNothing) {
  OldCaptures old;
  const std::set<std::string> before = old.names();
  Service s(Env{{"RSR_PROFILING_OUTPUT_DIR", old.out}, {"RSR_PROFILING_CLEANUP_DAYS", "0"}});
  // A capture started and stopped: the writer thread has been through its loop.
  const json started = s.start(60);
  ASSERT_TRUE(s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}}).served());
  std::set<std::string> after = old.names();
  after.erase(started["path"].get<std::string>().substr(old.out.size() + 1));
  EXPECT_EQ(after, before);
}

TEST(Profiling, UnusableOutputDirectoryIsRefused) {
  TempDir base("rsrprofdir");
  rt::write_file(base / "plain", "x");
  {
    Service s(Env{{"RSR_PROFILING_OUTPUT_DIR", base / "plain/sub"}});
    Reply r = s.ask({{"cmd", "start_profiling"}, {"duration_s", 1}});
    EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
    const std::string e = r.json.value("error", "");
    EXPECT_NE(e.find(base / "plain/sub"), std::string::npos) << e;
    EXPECT_NE(e.find("Not a directory"), std::string::npos) << e;
    EXPECT_TRUE(rt::summary(s.dir.path(), s.p.pid(), 0).served());
    EXPECT_FALSE(s.line("run", "done").empty());
  }
  {
    ASSERT_EQ(mkdir((base / "real").c_str(), 0700), 0);
    ASSERT_EQ(symlink((base / "real").c_str(), (base / "link").c_str()), 0);
    Service s(Env{{"RSR_PROFILING_OUTPUT_DIR", base / "link"}});
    Reply r = s.ask({{"cmd", "start_profiling"}, {"duration_s", 1}});
    EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
    EXPECT_NE(r.json.value("error", "").find("symbolic link"), std::string::npos) << r.payload;
    EXPECT_TRUE(rt::list_dir(base / "real").empty());
  }
  {
    ASSERT_EQ(mkdir((base / "open").c_str(), 0777), 0);
    chmod((base / "open").c_str(), 0777);
    Service s(Env{{"RSR_PROFILING_OUTPUT_DIR", base / "open"}});
    Reply r = s.ask({{"cmd", "start_profiling"}, {"duration_s", 1}});
    EXPECT_EQ(r.kind, rsr::proto::Kind::kError);
    EXPECT_NE(r.json.value("error", "").find("world-writable"), std::string::npos) << r.payload;
  }
}

TEST(Profiling, EndsByItselfAtItsDuration) {
  Service s;
  const json started = s.start(1.0);
  ASSERT_TRUE(s.wait_idle(6000));
  const Capture c = decode(started["path"]);
  ASSERT_TRUE(c.has_end);
  EXPECT_EQ(c.end["reason"], "duration");
  EXPECT_EQ(c.end["truncated"], false);
  EXPECT_EQ(c.header["duration_s"], 1.0);
  const double took = c.end["end_time"].get<double>() - c.header["start_time"].get<double>();
  EXPECT_GE(took, 0.95);
  EXPECT_LT(took, 3.0);
  Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  EXPECT_EQ(r.json.value("error", ""), "no active profiling capture '" + started["id"].get<std::string>() + "'");
}

TEST(Profiling, CapturesInTheSameSecondGetTheirOwnIdsAndFiles) {
  Service s;
  std::set<std::string> ids, paths;
  for (int i = 0; i < 3; ++i) {
    const json started = s.start(60);
    ASSERT_TRUE(started.contains("id")) << started.dump();
    ids.insert(started["id"].get<std::string>());
    paths.insert(started["path"].get<std::string>());
    Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
    ASSERT_TRUE(r.served()) << r.describe();
    EXPECT_EQ(r.json["stopped"]["reason"], "stopped");
    EXPECT_TRUE(decode(started["path"]).has_end) << started["path"];
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(paths.size(), 3u);
  EXPECT_EQ(s.files().size(), 3u);
}

// A thread that allocates now and then hands its buffer over once its oldest event is 100 ms
// old (at its next event), not only when the buffer is full or the capture ends: its events reach
// the file close to their time.
TEST(Profiling, AQuietThreadsEventsAreWrittenWithoutWaitingForTheEnd) {
  Service s;
  const json started = s.start(60);
  const std::string quiet = s.line("quiet", "quiet ");
  ASSERT_FALSE(quiet.empty());
  const uint64_t tid = std::stoull(quiet.substr(6));
  ASSERT_FALSE(s.line("churn 20000", "churned").empty());
  Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  ASSERT_TRUE(r.served()) << r.describe();
  ASSERT_FALSE(s.line("quiet-end", "quiet-ended").empty());
  const Capture c = decode(started["path"]);
  std::vector<size_t> quiet_at, main_at;
  for (size_t i = 0; i < c.allocs.size(); ++i)
    (c.allocs[i].tid == tid ? quiet_at : main_at).push_back(i);
  ASSERT_EQ(quiet_at.size(), 2u);
  ASSERT_FALSE(main_at.empty());
  // The churn (20,000 allocations after the quiet thread's second one) follows its events in
  // the file; held until the end, they would come after all but the main thread's last buffer.
  const size_t after = static_cast<size_t>(
      main_at.end() - std::upper_bound(main_at.begin(), main_at.end(), quiet_at.back()));
  EXPECT_GT(after, 10000u) << "the quiet thread's buffer was held until the end";
  EXPECT_GT(c.allocs[quiet_at[1]].t - c.allocs[quiet_at[0]].t, 250'000'000);
}

// Blocks freed by another thread than the one that allocated them, at a high rate both ways,
// and a block allocated by a thread that then goes quiet (its buffer not full, not handed over)
// and freed at once by the main thread: the writer collects the quiet thread's buffer, so its
// ALLOC is written before the FREE, every FREE names a live block, and nothing of theirs is
// left live.
TEST(Profiling, BlocksFreedByOtherThreadsAreMatchedWhateverTheHandOverOrder) {
  Service s;
  const json started = s.start(60);
  const std::string given = s.line("give", "given ");
  ASSERT_FALSE(given.empty());
  const uint64_t giver = std::stoull(given.substr(6));
  const std::string handed = s.line("handoff 20000", "handed ");
  ASSERT_FALSE(handed.empty());
  uint64_t producer = 0, consumer = 0;
  ASSERT_EQ(sscanf(handed.c_str(), "handed %lu %lu", &producer, &consumer), 2);
  Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  ASSERT_TRUE(r.served()) << r.describe();
  ASSERT_FALSE(s.line("give-end", "give-ended").empty());
  const Capture c = decode(started["path"]);
  ASSERT_TRUE(c.has_end);
  EXPECT_TRUE(c.problems.empty()) << c.problems.size() << " problems, the first: " << c.problems.front();
  std::map<uint64_t, uint64_t> freed_by;  // block id -> thread
  for (const Free& f : c.frees) freed_by[f.id] = f.tid;
  uint64_t gave = 0, produced = 0, consumed = 0;
  for (const Alloc& a : c.allocs) {
    const auto f = freed_by.find(a.id);
    if (a.tid == giver) {
      ++gave;
      ASSERT_NE(f, freed_by.end()) << "the quiet thread's block is not freed in the capture";
      EXPECT_EQ(f->second, static_cast<uint64_t>(s.p.pid()));
    } else if (a.tid == producer && a.size >= 200 && a.size < 300) {
      ++produced;
      ASSERT_NE(f, freed_by.end());
      EXPECT_EQ(f->second, consumer);
    } else if (a.tid == consumer && a.size >= 300 && a.size < 400) {
      ++consumed;
      ASSERT_NE(f, freed_by.end());
      EXPECT_EQ(f->second, producer);
    }
  }
  EXPECT_EQ(gave, 1u);
  EXPECT_EQ(produced, 20000u);
  EXPECT_EQ(consumed, 20000u);
  // Time order: the file's times never go back (TIMES entries only add).
  for (size_t i = 1; i < c.allocs.size(); ++i) ASSERT_LE(c.allocs[i - 1].t, c.allocs[i].t);
}

// A request handler's allocations repeat round after round: the file grows by a few bytes per
// thousand allocations (heaptrack's file for the bench's server loop: ~23 kB per million).
TEST(Profiling, ARepeatingRequestLoopCostsAFewBytesPerThousandAllocations) {
  Service s;
  const json started = s.start(60);
  ASSERT_FALSE(s.line("loop 400000", "looped").empty());
  Reply r = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  ASSERT_TRUE(r.served()) << r.describe();
  const Capture c = decode(started["path"]);
  ASSERT_TRUE(c.has_end);
  EXPECT_TRUE(c.problems.empty()) << c.problems.front();
  ASSERT_GE(c.allocs.size(), 1200000u);
  struct stat st{};
  ASSERT_EQ(stat(started["path"].get<std::string>().c_str(), &st), 0);
  const double per_million = static_cast<double>(st.st_size) * 1e6 / static_cast<double>(c.allocs.size());
  std::printf("[measure] request loop: %.0f bytes per million allocations (%lld bytes, %zu allocations)\n", per_million,
              static_cast<long long>(st.st_size), c.allocs.size());
  EXPECT_LT(per_million, 10000.0);
}

TEST(Profiling, StopsAtTheSizeCap) {
  Service s(Env{{"RSR_MAX_PROFILE_SIZE_MB", "1"}});
  const json started = s.start(120);
  EXPECT_EQ(started["max_bytes"], 1 << 20);
  EXPECT_FALSE(s.line("churn 3000000", "churned").empty());
  ASSERT_TRUE(s.wait_idle(10000));
  struct stat st{};
  ASSERT_EQ(stat(started["path"].get<std::string>().c_str(), &st), 0);
  EXPECT_LE(st.st_size, 1 << 20);
  const Capture c = decode(started["path"]);
  EXPECT_FALSE(c.truncated_stream);
  ASSERT_TRUE(c.has_end);
  EXPECT_EQ(c.end["reason"], "size_limit");
  EXPECT_EQ(c.end["truncated"], true);
  EXPECT_GT(c.allocs.size(), 10000u);
  EXPECT_TRUE(rt::summary(s.dir.path(), s.p.pid(), 0).served());
}

// Starves the capture's writer: every thread of `pid` on CPU 0, the writer ("rsrmem-prof") at
// nice 19 beside threads at nice 0, so it gets a percent or two of the CPU while they run.
bool starve_writer(pid_t pid) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  bool found = false;
  for (const std::string& task : rt::list_dir("/proc/" + std::to_string(pid) + "/task")) {
    const pid_t tid = std::atoi(task.c_str());
    sched_setaffinity(tid, sizeof one, &one);
    std::ifstream comm("/proc/" + std::to_string(pid) + "/task/" + task + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "rsrmem-prof") found = setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19) == 0;
  }
  return found;
}

// A capture loses no event when its writer falls behind: the allocating thread waits for a
// buffer instead (waited_events counts them). With RSR_PROFILING_DROP_EVENTS=true the same
// starved writer makes it drop, which shows the scenario does fill the pool.
TEST(Profiling, AWriterThatFallsBehindSlowsTheThreadsInsteadOfLosingEvents) {
  for (const bool drop : {false, true}) {
    Service s(drop ? Env{{"RSR_PROFILING_DROP_EVENTS", "true"}} : Env{});
    const json started = s.start(120);
    ASSERT_TRUE(starve_writer(s.p.pid())) << "no rsrmem-prof thread";
    EXPECT_FALSE(s.line("churn 3000000", "churned").empty());  // 6 M events: three pools' worth
    const Reply stop = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
    ASSERT_TRUE(stop.served()) << stop.describe();
    const json& st = stop.json["stopped"];
    if (drop) {
      EXPECT_GT(st["dropped_events"].get<uint64_t>(), 0u) << st.dump();
      continue;
    }
    EXPECT_EQ(st["dropped_events"], 0) << st.dump();
    EXPECT_GT(st["waited_events"].get<uint64_t>(), 0u) << st.dump();
    const Capture c = decode(started["path"]);
    ASSERT_TRUE(c.has_end);
    EXPECT_EQ(c.end["dropped_events"], 0);
    EXPECT_GE(c.allocs.size(), 3000000u);
  }
}

TEST(Profiling, WriteErrorEndsTheCaptureOnly) {
  // Files of the service may not grow beyond 256 KiB; SIGXFSZ ignored, so write() fails with EFBIG.
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small{256 * 1024, old.rlim_max};
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  Service s;
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);

  const json started = s.start(120);
  EXPECT_FALSE(s.line("churn 2000000", "churned").empty());
  ASSERT_TRUE(s.wait_idle(10000));
  struct stat st{};
  ASSERT_EQ(stat(started["path"].get<std::string>().c_str(), &st), 0) << "renamed even after the error";
  EXPECT_LE(st.st_size, 256 * 1024);
  const Capture c = decode(started["path"]);
  EXPECT_TRUE(c.header_ok);
  EXPECT_FALSE(c.truncated_stream);  // the frame cut short was dropped
  // The END record fits unless the last whole frame ended within its size of the limit.
  if (c.has_end) {
    EXPECT_EQ(c.end["reason"], "write_error");
    EXPECT_EQ(c.end["truncated"], true);
  } else {
    EXPECT_GT(st.st_size, 256 * 1024 - 512);
  }
  EXPECT_FALSE(s.line("run", "done").empty());
  EXPECT_TRUE(rt::summary(s.dir.path(), s.p.pid(), 0).served());
}

TEST(Profiling, DirectoryRemovedDuringTheCapture) {
  Service s;
  const json started = s.start(120);
  EXPECT_EQ(system(("rm -rf '" + s.out_dir + "'").c_str()), 0);
  EXPECT_FALSE(s.line("churn 20000", "churned").empty());
  ASSERT_TRUE(s.wait_idle(10000));
  EXPECT_FALSE(s.line("run", "done").empty());
  EXPECT_TRUE(rt::summary(s.dir.path(), s.p.pid(), 0).served());
}

TEST(Profiling, ScopesAreCapturedOnePerFile) {
  Service s(Env{{"RSR_PROFILING_REQUEST_PROBABILITY", "1"}});
  const std::string line = s.line("scopes", "scoped");
  ASSERT_FALSE(line.empty());
  const uint64_t tid = std::stoull(line.substr(7));
  const auto syms = symbols(rt::program("profiled"), s.ready);
  std::vector<std::string> files;
  for (int waited = 0; waited < 5000; waited += 50) {
    files.clear();
    for (const std::string& f : s.files())
      if (f.rfind("scope_", 0) == 0 && f.find(".part") == std::string::npos) files.push_back(f);
    if (files.size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(files.size(), 3u);
  std::set<std::string> serials;
  for (const std::string& f : files) {
    EXPECT_EQ(f.rfind("scope_req_a_", 0), 0u) << f;
    EXPECT_NE(f.find("_" + std::to_string(s.p.pid()) + "_"), std::string::npos) << f;
    serials.insert(f.substr(f.rfind('_') + 1));
    const Capture c = decode(s.out_dir + "/" + f);
    EXPECT_TRUE(c.problems.empty());
    EXPECT_EQ(c.header["kind"], "scope");
    EXPECT_EQ(c.header["scope"], "req/a");
    EXPECT_EQ(c.header["id"].get<std::string>().rfind("scope_req_a_", 0), 0u);
    ASSERT_TRUE(c.has_end);
    EXPECT_EQ(c.end["reason"], "scope_end");
    EXPECT_EQ(c.allocs.size(), 7u);
    EXPECT_EQ(c.frees.size(), 3u);
    for (const Alloc& a : c.allocs) {
      EXPECT_EQ(a.tid, tid);
      EXPECT_TRUE(stack_has(c, a.stack, syms.at("scoped_work")));
    }
    for (const Free& fr : c.frees) EXPECT_EQ(fr.tid, tid);
    EXPECT_EQ(c.threads.size(), 1u);
    EXPECT_FALSE(c.modules.empty());
  }
  EXPECT_EQ(serials.size(), 3u);
}

TEST(Profiling, ForkedChildHasNoCapture) {
  Service s;
  const json started = s.start(60);
  // The parent's "forked <pid>" and the child's "child <pid>" come in either order.
  ASSERT_TRUE(s.p.write("fork\n"));
  pid_t child = -1;
  bool child_ran = false;
  while (child < 0 || !child_ran) {
    const auto l = s.p.read_until([](const std::string& x) { return x.rfind("forked ", 0) == 0 || x.rfind("child ", 0) == 0; },
                                  kLineMs);
    ASSERT_TRUE(l) << s.p.describe();
    if (l->rfind("forked ", 0) == 0) child = std::stoi(l->substr(7));
    else child_ran = true;
  }
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(s.dir.path(), child, kSocketMs, &hello)) << hello.describe();
  Reply cs = rt::query(rt::socket_path(s.dir.path(), child), R"({"cmd":"status"})");
  ASSERT_TRUE(cs.served());
  EXPECT_TRUE(cs.json["profilers"].empty()) << cs.payload;
  Reply cm = rt::query(rt::socket_path(s.dir.path(), child), R"({"cmd":"metrics"})");
  EXPECT_EQ(cm.json["profiling"]["active"], 0);
  // The child can start its own, and the parent's keeps running.
  Reply ps = s.ask({{"cmd", "status"}});
  EXPECT_EQ(ps.json["profilers"].size(), 1u);
  EXPECT_FALSE(s.line("run", "done").empty());
  Reply stop = s.ask({{"cmd", "stop_profiling"}, {"id", started["id"]}});
  ASSERT_TRUE(stop.served()) << stop.describe();
  const Capture c = decode(started["path"]);
  ASSERT_TRUE(c.has_end);
  EXPECT_EQ(c.end["reason"], "stopped");
  for (const Alloc& a : c.allocs) EXPECT_NE(a.tid, static_cast<uint64_t>(child));
  kill(child, SIGKILL);
}

TEST(Profiling, ExitEndsTheCapture) {
  Service s;
  const json started = s.start(60);
  EXPECT_FALSE(s.line("run", "done").empty());
  s.p.write("exit\n");
  ASSERT_TRUE(s.p.wait(10000).has_value());
  const Capture c = decode(started["path"]);
  ASSERT_TRUE(c.has_end);
  EXPECT_EQ(c.end["reason"], "exit");
  EXPECT_EQ(c.end["truncated"], true);
  EXPECT_GE(c.allocs.size(), 1500u);
}

}  // namespace
