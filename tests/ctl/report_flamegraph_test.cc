// The flamegraph page: its embedded data (merged tree, escaping), that it asks for nothing over
// the network, and, in Debian's headless Chromium when it is installed, what it shows: names,
// the search from a #search= fragment, no JavaScript errors, a screenshot kept in the build
// directory (flamegraph.png, next to flamegraph.html).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <tuple>

#include "report_flamegraph.h"
#include "report_test_models.h"
#include "subprocess.h"

namespace rsr::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kImgTag = "<img src=\"https://example.invalid/x.png\" onerror=\"f()\">";

// The small model plus a frame whose name is markup loading an external image.
ProfileModel page_model() {
  ProfileModel m = rsrtest::small_model();
  m.stacks.push_back(
      {{rsrtest::frame(0x401600, kImgTag, "src/img.cc", 1, rsrtest::kService), m.stacks[2].frames[1]},
       0, 0});
  return m;
}

std::string html(const ProfileModel& m) {
  std::ostringstream out;
  write_flamegraph_html(m, out);
  return out.str();
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(FlamegraphData, StacksMergeIntoATreeAndEscapeEverything) {
  const std::string text = flamegraph_json(rsrtest::small_model());
  EXPECT_EQ(text.find_first_of("<>&"), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(text);
  const auto& strings = j["strings"];
  auto name = [&](const nlohmann::json& node) -> std::string {
    const int frame = node[1];
    return frame < 0 ? "all" : strings[j["frames"][4 * frame].get<int>()].get<std::string>();
  };
  std::vector<nlohmann::json> nodes;
  for (size_t i = 0; i < j["nodes"].size(); i += 5)
    nodes.push_back({j["nodes"][i], j["nodes"][i + 1], j["nodes"][i + 2], j["nodes"][i + 3],
                     j["nodes"][i + 4]});
  // all; main (lines 10 and 12 merged); its callees largest first, each followed by its subtree.
  std::vector<std::string> names;
  for (const auto& n : nodes) names.push_back(std::to_string(n[0].get<int>()) + " " + name(n));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "0 all", "1 main", "2 register_session(Session const&)",
                       std::string("3 ") + rsrtest::kPushBack, "4 operator new(unsigned long)",
                       std::string("2 ") + rsrtest::kEvil, "3 operator new(unsigned long)",
                       std::string("2 ") + rsrtest::kHandler, "2 zero_sized()"}));
  EXPECT_EQ(nodes[0][3], 1350);
  EXPECT_EQ(nodes[0][4], 20);
  EXPECT_EQ(nodes[1][2], -1);  // main: several lines
  EXPECT_EQ(nodes[1][3], 1350);
  EXPECT_EQ(nodes[2][2], 42);
  EXPECT_EQ(nodes[3][3], 1000);
  EXPECT_EQ(j["frames"][4 * nodes[3][1].get<int>() + 3], 1);  // push_back is inlined
  EXPECT_EQ(j["frames"][4 * nodes[2][1].get<int>() + 3], 0);
  EXPECT_EQ(j["meta"]["view"], "all");
  EXPECT_EQ(j["meta"]["truncated"], true);
  EXPECT_EQ(j["meta"]["pid"], 4242);
}

TEST(FlamegraphPage, SelfContainedAndMakesNoNetworkRequest) {
  const std::string page = html(page_model());
  // Only the data block and the page's script end a script element.
  EXPECT_EQ(occurrences(page, "</script"), 2u);
  EXPECT_EQ(occurrences(page, "<script"), 2u);
  EXPECT_THAT(page, HasSubstr("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"));
  const std::regex external(R"re((src|href|action)\s*=\s*["']?\s*(https?:)?//)re", std::regex::icase);
  EXPECT_FALSE(std::regex_search(page, external));
  for (const char* api : {"fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon",
                          "import(", "@import", "url(", "<iframe", "<link rel=\"stylesheet\""})
    EXPECT_THAT(page, Not(HasSubstr(api))) << api;
  // The one URL in the file is the frame name, inside the escaped data.
  const size_t data_begin = page.find("<script type=\"application/json\" id=\"profile-data\">");
  const size_t data_end = page.find("</script>", data_begin);
  ASSERT_NE(data_begin, std::string::npos);
  const std::string outside = page.substr(0, data_begin) + page.substr(data_end);
  EXPECT_THAT(outside, Not(HasSubstr("http://")));
  EXPECT_THAT(outside, Not(HasSubstr("https://")));
  EXPECT_EQ(occurrences(page, "https://"), 1u);
}

TEST(FlamegraphPage, EmptyViewStillWritesAPage) {
  ProfileModel m = rsrtest::small_model();
  m.stacks.clear();
  const std::string page = html(m);
  EXPECT_THAT(page, HasSubstr("\"nodes\":[0,-1,0,0,0]"));
}

TEST(FlamegraphPage, HundredThousandStacksMergeBeforeEmitting) {
  const ProfileModel m = rsrtest::large_model(100000);
  const auto start = std::chrono::steady_clock::now();
  const std::string text = flamegraph_json(m);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Random deep frames share little: about 2.2 million nodes of ~17 bytes each. The limit is
  // loose (a loaded machine must pass) and still catches a quadratic merge.
  EXPECT_LT(text.size(), 60u << 20);
  EXPECT_LT(seconds, 60.0);
  // Each function name is sent once, however many nodes use it.
  EXPECT_EQ(occurrences(text, "ns::function_1999\\u003cint\\u003e()"), 1u);
  std::printf("100000 stacks: %zu bytes of JSON in %.1f s\n", text.size(), seconds);
}

// Headless Chromium on written pages (scripts/bootstrap installs Debian's chromium).
class Browser : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kChromium, X_OK), 0) << kChromium << " is not installed (scripts/bootstrap installs it)";
    char tmpl[] = "/tmp/rsr-flamegraph-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Chromium on file://`path``fragment` with `args`; stdout is the DOM for --dump-dom, stderr
  // the log. Each run gets a fresh profile.
  rsrtest::Result chromium(const std::string& path, const std::string& fragment,
                           const std::vector<std::string>& args) {
    const std::string profile = dir_ + "/profile" + std::to_string(runs_++);
    std::vector<std::string> argv = {kChromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                     "--disable-dev-shm-usage", "--user-data-dir=" + profile,
                                     "--no-first-run", "--virtual-time-budget=5000"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("file://" + path + fragment);
    return rsrtest::run(argv, {{"HOME", dir_}});
  }

  rsrtest::Result dump_dom(const std::string& path, const std::string& fragment) {
    return chromium(path, fragment, {"--enable-logging=stderr", "--v=0", "--dump-dom"});
  }

  // What a page's scripts said went wrong: uncaught exceptions, console errors, refused loads.
  static std::vector<std::string> script_errors(const std::string& log) {
    std::vector<std::string> errors;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);)
      // The page logs nothing: any console line (ERROR:CONSOLE, INFO:CONSOLE) is news.
      if (line.find("Uncaught") != std::string::npos || line.find("CONSOLE") != std::string::npos ||
          line.find("Refused to") != std::string::npos)
        errors.push_back(line);
    return errors;
  }

  // The DOM without <head>, scripts and the data block: what the page shows.
  static std::string visible(const std::string& dom) {
    std::string out;
    size_t at = 0;
    for (;;) {
      const size_t head = dom.find("<head>", at), script = dom.find("<script", at);
      const size_t begin = std::min(head, script);
      if (begin == std::string::npos) break;
      const size_t end = dom.find(begin == head ? "</head>" : "</script>", begin);
      if (end == std::string::npos) break;
      out.append(dom, at, begin - at);
      at = dom.find('>', end) + 1;
    }
    return out + dom.substr(at);
  }

  static std::string match_info(const std::string& dom) { return text_of(dom, "match-info"); }

  // The text of the <span> with `id`.
  static std::string text_of(const std::string& dom, const std::string& id) {
    std::smatch m;
    const std::regex re("<span id=\"" + id + "\"[^>]*>([^<]*)</span>");
    return std::regex_search(dom, m, re) ? m[1].str() : "(no #" + id + ")";
  }

  // Runs `driver` (a <script> appended to the page of `m`, which calls report(out) with what it
  // saw) and returns what it reported, or {"error": ...}.
  nlohmann::json drive(const ProfileModel& m, const char* driver, const std::string& name) {
    static constexpr const char* kReport = R"js(<script>
function report(out) {
  var pre = document.createElement('pre');
  pre.id = 'test-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}
</script>)js";
    std::string page = html(m);
    page.insert(page.rfind("</body>"), std::string(kReport) + driver);
    const rsrtest::Result r = dump_dom(write(name, page), "");
    if (r.code != 0) return nlohmann::json{{"error", r.err}};
    const std::vector<std::string> errors = script_errors(r.err);
    if (!errors.empty()) return nlohmann::json{{"error", errors}};
    return driven(r);
  }

  // The JSON a driver script appended to the page wrote into <pre id="test-result">.
  static nlohmann::json driven(const rsrtest::Result& r) {
    const size_t begin = r.out.find("<pre id=\"test-result\">");
    if (begin == std::string::npos) return nlohmann::json{{"error", "no #test-result: " + visible(r.out).substr(0, 3000)}};
    std::string text = r.out.substr(begin + 22, r.out.find("</pre>", begin) - begin - 22);
    for (auto [from, to] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}})
      for (size_t at; (at = text.find(from)) != std::string::npos;) text.replace(at, strlen(from), to);
    return nlohmann::json::parse(text);
  }

  std::string dir_;
  int runs_ = 0;
};

TEST_F(Browser, ErrorsOfABrokenPageAreSeen) {
  const std::string path =
      write("broken.html", "<!DOCTYPE html><html><body><script>no_such_function();</script></body></html>");
  const rsrtest::Result r = dump_dom(path, "");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(script_errors(r.err).empty()) << r.err;
}

TEST_F(Browser, ShowsFramesAndRunsTheSearchFromTheFragment) {
  const std::string path = write("flamegraph.html", html(page_model()));
  const rsrtest::Result r = dump_dom(path, "#search=register_session");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string dom = visible(r.out);
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  EXPECT_THAT(dom, HasSubstr("data-ready=\"1\""));
  EXPECT_EQ(match_info(dom), "1 frame matches, 74.1% of bytes");
  // Names shortened on the frames (parameters and template arguments elided); the inlined
  // std::vector frame hidden (an inlined library frame); everything else dimmed by the search.
  EXPECT_THAT(dom, testing::ContainsRegex("class=\"f m\"[^>]*>register_session\\(\u2026\\)<"));
  EXPECT_THAT(dom, testing::ContainsRegex("class=\"f dim\"[^>]*>main<"));
  EXPECT_THAT(dom, Not(HasSubstr("push_back")));
  EXPECT_THAT(dom, HasSubstr(">operator new(\u2026)<"));
  EXPECT_THAT(dom, HasSubstr(">&lt;/script&gt;&lt;script&gt;alert(\u2026)&lt;/script&gt;<"));
  // The header.
  EXPECT_THAT(dom, HasSubstr("rsrmem flamegraph: background_1700000000"));
  EXPECT_THAT(dom, HasSubstr("demo"));
  EXPECT_THAT(dom, HasSubstr("4242"));
  EXPECT_THAT(dom, HasSubstr("all allocations"));
  EXPECT_THAT(dom, HasSubstr("12.5 s"));
  EXPECT_THAT(dom, HasSubstr("1.3 KiB in 20 allocations, 4 stacks"));  // the markup frame's stack has none
  EXPECT_THAT(dom, HasSubstr("Truncated: the capture stopped before its planned duration (size_limit)"));
  EXPECT_THAT(dom, HasSubstr("3 events were dropped"));
  // Names were drawn as text, never parsed as markup.
  EXPECT_THAT(dom, Not(HasSubstr("<img")));
}

// Drives the page as a user would (hover, click, type, switch, Esc) from a script appended to
// it, which reports what it saw (Browser::drive).
constexpr const char* kDriver = R"js(<script>
(function () {
  var out = {};
  function frame(name) {
    return Array.prototype.find.call(document.querySelectorAll('#chart .f'),
                                     function (e) { return e.textContent === name; });
  }
  function hover(name) {
    frame(name).dispatchEvent(new MouseEvent('mousemove', { bubbles: true, clientX: 200, clientY: 300 }));
    return document.getElementById('tip').textContent;
  }
  out.tip = hover('register_session(\u2026)');
  out.collapsedInlined = !frame('std::vector<\u2026>::push_back(\u2026)');
  document.getElementById('collapse').click();
  out.inlinedTip = hover('std::vector<\u2026>::push_back(\u2026)');
  out.mainTip = hover('main');
  frame('register_session(\u2026)').click();
  out.crumbs = document.getElementById('crumbs').textContent;
  out.zoomedWidth = frame('register_session(\u2026)').style.width;
  out.hiddenWhileZoomed = !frame('handler<\u2026>::run()');
  var input = document.getElementById('search');
  input.value = 'operator new';
  input.dispatchEvent(new Event('input'));
  setTimeout(function () {
    out.info = document.getElementById('match-info').textContent;
    out.hash = location.hash;
    out.highlighted = document.querySelectorAll('#chart .f.m').length;
    document.getElementById('metric-count').click();
    out.infoByCount = document.getElementById('match-info').textContent;
    document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }));
    out.crumbsAfterEsc = document.getElementById('crumbs').textContent;
    out.handlerWidthByCount = frame('handler<\u2026>::run()').style.width;
    report(out);
  }, 400);
})();
</script>)js";

TEST_F(Browser, HoverZoomSearchSwitchAndReset) {
  const nlohmann::json out = drive(rsrtest::small_model(), kDriver, "driven.html");
  ASSERT_FALSE(out.contains("error")) << out["error"];
  EXPECT_EQ(out["tip"],
            "register_session(Session const&)source: src/sessions.cc:42module: /usr/bin/demo-service"
            "bytes: 1000 B (1,000 B)allocations: 10share: 74.1% of bytes, 50.0% of allocations");
  EXPECT_THAT(out["inlinedTip"].get<std::string>(),
              testing::StartsWith(std::string(rsrtest::kPushBack) +
                                  "inlinedsource: /usr/include/c++/12/bits/stl_vector.h:1287"));
  EXPECT_THAT(out["inlinedTip"].get<std::string>(),
              HasSubstr("inlined into: register_session(Session const&)"));
  EXPECT_THAT(out["mainTip"].get<std::string>(), HasSubstr("source: src/main.cc (several lines)"));
  EXPECT_EQ(out["collapsedInlined"], true);
  EXPECT_EQ(out["crumbs"], "all\u203amain\u203aregister_session(\u2026)");
  EXPECT_EQ(out["zoomedWidth"], "100%");
  EXPECT_EQ(out["hiddenWhileZoomed"], true);
  EXPECT_EQ(out["info"], "2 frames match, 96.3% of bytes");
  EXPECT_EQ(out["hash"], "#search=operator%20new");
  EXPECT_EQ(out["highlighted"], 1);  // zoomed: only the operator new under register_session
  EXPECT_EQ(out["infoByCount"], "2 frames match, 65.0% of allocations");
  EXPECT_EQ(out["crumbsAfterEsc"], "");
  EXPECT_EQ(out["handlerWidthByCount"], "25%");  // 5 of 20 allocations
}

TEST_F(Browser, RegexSearchAndOtherViews) {
  ProfileModel m = rsrtest::small_model(ProfileView::kLeaks);
  m.truncated = false;
  m.dropped_events = 0;
  const std::string path = write("leaks.html", html(m));
  const rsrtest::Result r = dump_dom(path, "#search=%2Fregister_session%7Chandler%2F");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  EXPECT_EQ(match_info(dom), "2 frames match, 77.8% of bytes");
  EXPECT_THAT(dom, HasSubstr("still live at the end (--leaks)"));
  EXPECT_THAT(dom, Not(HasSubstr("Truncated")));
  EXPECT_THAT(dom, Not(HasSubstr("dropped")));
}

TEST_F(Browser, EmptyView) {
  ProfileModel m = rsrtest::small_model(ProfileView::kTemporary);
  m.stacks.clear();
  const rsrtest::Result r = dump_dom(write("empty.html", html(m)), "#search=main");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  EXPECT_THAT(dom, HasSubstr("No allocations in this view."));
  EXPECT_EQ(match_info(dom), "0 frames match, 0.0% of bytes");
}

// The memory chart and what a time range, a thread and the views show: exact figures of
// timed_model() (report_test_models.h).
TEST_F(Browser, TimeRangeAndThreadFromTheFragment) {
  const std::string all = write("timed.html", html(rsrtest::timed_model()));
  const std::string leaks = write("timed-leaks.html", html(rsrtest::timed_model(ProfileView::kLeaks)));
  struct Case {
    std::string path, fragment, totals, range;
  };
  const Case cases[] = {
      {all, "", "Shown: 2.0 KiB (2,000 B) in 30 allocations", "Drag across the chart to pick a time range."},
      {all, "#range=0.5-0.7", "Shown: 1,000 B in 20 allocations",
       "Range 0.500 s \u2013 0.700 s: 1,000 B in 20 allocations, allocated in it"},
      {all, "#range=0.15-0.6", "Shown: 1,000 B in 15 allocations",
       "Range 0.150 s \u2013 0.600 s: 1,000 B in 15 allocations, allocated in it"},
      {all, "#thread=4242", "Shown: 1,000 B in 10 allocations on thread 4242 (main)",
       "Drag across the chart to pick a time range."},
      {all, "#range=0.5-0.7&thread=4242", "Shown: 0 B in 0 allocations on thread 4242 (main)",
       "Range 0.500 s \u2013 0.700 s: 0 B in 0 allocations on thread 4242 (main), allocated in it"},
      // --leaks: what was allocated in the range and still live at its end.
      {leaks, "", "Shown: 500 B in 5 allocations", "Drag across the chart to pick a time range."},
      {leaks, "#range=0.1-0.7", "Shown: 1.5 KiB (1,500 B) in 25 allocations",
       "Range 0.100 s \u2013 0.700 s: 1.5 KiB (1,500 B) in 25 allocations, allocated in it and still live at its end"},
      // A range past the capture's end is no range.
      {all, "#range=5-9", "Shown: 2.0 KiB (2,000 B) in 30 allocations", "Drag across the chart to pick a time range."},
      {leaks, "#range=0-0.9", "Shown: 500 B in 5 allocations",
       "Range 0.000 s \u2013 0.900 s: 500 B in 5 allocations, allocated in it and still live at its end"},
  };
  for (const Case& c : cases) {
    const rsrtest::Result r = dump_dom(c.path, c.fragment);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(script_errors(r.err), testing::IsEmpty()) << c.fragment;
    const std::string dom = visible(r.out);
    EXPECT_EQ(text_of(dom, "view-totals"), c.totals) << c.path << c.fragment;
    EXPECT_EQ(text_of(dom, "range-info"), c.range) << c.path << c.fragment;
    // The chart is drawn: live memory as an area, heap and RSS as lines.
    EXPECT_THAT(dom, HasSubstr("<section id=\"time\">"));
    EXPECT_THAT(dom, HasSubstr("<polygon class=\"live\""));
    EXPECT_THAT(dom, HasSubstr("<polyline class=\"heap\""));
    EXPECT_THAT(dom, HasSubstr("<polyline class=\"rss\""));
    EXPECT_EQ(dom.find("<rect class=\"sel\"") != std::string::npos, c.range.rfind("Range", 0) == 0) << c.fragment;
  }
}

// A capture read without uses (too many of them): the chart alone, the whole capture shown.
TEST_F(Browser, TheChartWithoutUses) {
  ProfileModel m = rsrtest::timed_model();
  m.uses.clear();
  const rsrtest::Result r = dump_dom(write("no-uses.html", html(m)), "#range=0.5-0.7&thread=4242");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  EXPECT_THAT(dom, HasSubstr("<section id=\"time\">"));
  EXPECT_THAT(dom, HasSubstr("<polygon class=\"live\""));
  EXPECT_THAT(dom, Not(HasSubstr("<rect class=\"sel\"")));
  EXPECT_EQ(text_of(dom, "view-totals"), "Shown: 2.0 KiB (2,000 B) in 30 allocations");
  EXPECT_THAT(dom, HasSubstr("<select id=\"thread\" disabled"));
}

// The process's heap and RSS are read every 100 ms: a span without a reading holds the last one
// (a line drawn down to zero between readings would show drops that never happened), and
// nothing is drawn before the first reading.
TEST_F(Browser, ProcessReadingsHoldBetweenSpans) {
  ProfileModel m = rsrtest::timed_model();
  for (size_t i = 0; i < m.timeline.size(); ++i) {
    m.timeline[i].heap_bytes = i >= 5 && i % 10 == 0 ? 8192 + i : 0;
    m.timeline[i].rss_bytes = i % 10 == 5 ? 65536 : 0;
  }
  const rsrtest::Result r = dump_dom(write("readings.html", html(m)), "");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  for (const std::string name : {"heap", "rss"}) {
    std::smatch match;
    ASSERT_TRUE(std::regex_search(dom, match, std::regex("<polyline class=\"" + name + "\" points=\"([^\"]*)\"")))
        << name;
    std::istringstream points(match[1].str());
    double first_x = -1, lowest = 1e9, highest = 0;
    for (std::string p; points >> p;) {
      const double x = std::stod(p.substr(0, p.find(','))), y = std::stod(p.substr(p.find(',') + 1));
      if (first_x < 0) first_x = x;
      lowest = std::min(lowest, y);
      highest = std::max(highest, y);
    }
    // y grows downwards; the axis (a value of 0) is at 112 (16 above, 18 below a 130-high chart).
    EXPECT_LT(highest, 111.0) << name << " drawn down to zero between readings: " << match[1];
    EXPECT_GT(first_x, 0.0) << name << " drawn before its first reading";
    EXPECT_GE(lowest, 16.0) << name;
  }
}

// The page of a difference (`diff --as flamegraph`) shows no capture totals nor chart.
TEST_F(Browser, ADifferenceHasNoCaptureFacts) {
  ProfileModel m = rsrtest::timed_model();
  m.kind = "difference";
  m.timeline.clear();
  m.uses.clear();
  const rsrtest::Result r = dump_dom(write("difference.html", html(m)), "");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  EXPECT_THAT(dom, HasSubstr("data-ready=\"1\""));
  EXPECT_THAT(dom, HasSubstr("this view: </span>2.0 KiB in 30 allocations"));
  for (const char* fact : {"capture: ", "peak: ", "live at end: ", "threads: ", "started: ", "duration: "})
    EXPECT_THAT(dom, Not(HasSubstr(std::string(fact) + "</span>"))) << fact;
  EXPECT_THAT(dom, HasSubstr("<section id=\"time\" hidden"));
}

// A range dragged across the chart with the mouse, the inverted view, the thread menu.
constexpr const char* kTimeDriver = R"js(<script>
(function () {
  var out = {};
  var chart = document.getElementById('timeline');
  function totals() { return document.getElementById('view-totals').textContent; }
  function mouse(type, target, t) {
    var r = chart.getBoundingClientRect();
    target.dispatchEvent(new MouseEvent(type, { bubbles: true, clientX: r.left + t * r.width, clientY: r.top + 50 }));
  }
  function row(n) {
    return Array.prototype.filter.call(document.querySelectorAll('#chart .f'), function (e) {
      return e.style.top === 18 * n + 'px';
    }).map(function (e) { return e.textContent; });
  }
  out.before = totals();
  mouse('mousedown', chart, 0.505);
  mouse('mousemove', document, 0.6);
  mouse('mouseup', document, 0.695);
  out.dragged = totals();
  out.range = document.getElementById('range-info').textContent;
  out.hash = location.hash;
  out.row1 = row(1);
  document.getElementById('inverted').click();
  out.invertedRow1 = row(1);
  out.invertedRow2 = row(2);
  out.invertedTotals = totals();
  var select = document.getElementById('thread');
  select.value = '0';
  select.dispatchEvent(new Event('change'));
  out.mainInRange = totals();
  document.getElementById('clear-range').click();
  out.mainWhole = totals();
  out.invertedMainRow1 = row(1);
  out.cssRules = document.styleSheets[0].cssRules.length;
  report(out);
})();
</script>)js";

TEST_F(Browser, DragARangeInvertAndPickAThread) {
  const nlohmann::json out = drive(rsrtest::timed_model(), kTimeDriver, "timed-driven.html");
  ASSERT_FALSE(out.contains("error")) << out["error"];
  EXPECT_EQ(out["before"], "Shown: 2.0 KiB (2,000 B) in 30 allocations");
  // 0.505 s to 0.695 s: the 10 ms spans 50 to 69, the worker's 20 allocations exactly.
  EXPECT_EQ(out["dragged"], "Shown: 1,000 B in 20 allocations");
  EXPECT_EQ(out["range"], "Range 0.500 s \u2013 0.700 s: 1,000 B in 20 allocations, allocated in it");
  EXPECT_EQ(out["hash"], "#range=0.5-0.7");
  EXPECT_EQ(out["row1"], nlohmann::json::array({"main"}));
  // Inverted: the allocating function on top, its caller below.
  EXPECT_EQ(out["invertedRow1"], nlohmann::json::array({"handler<\u2026>::run()"}));
  EXPECT_EQ(out["invertedRow2"], nlohmann::json::array({"main"}));
  EXPECT_EQ(out["invertedTotals"], "Shown: 1,000 B in 20 allocations");
  EXPECT_EQ(out["mainInRange"], "Shown: 0 B in 0 allocations on thread 4242 (main)");
  EXPECT_EQ(out["mainWhole"], "Shown: 1,000 B in 10 allocations on thread 4242 (main)");
  EXPECT_EQ(out["invertedMainRow1"], nlohmann::json::array({"register_session(\u2026)"}));
  // Chromium parsed every rule of the style sheet (one it cannot parse is dropped).
  const std::string sheet = rsrtest::read_file(rsrtest::env_or_die("RSR_PAGE_CSS"));
  ASSERT_GT(occurrences(sheet, "}"), 30u);
  EXPECT_EQ(out["cssRules"], occurrences(sheet, "}"));
}

TEST_F(Browser, HundredThousandStacksRender) {
  const std::string path = write("large.html", html(rsrtest::large_model(100000)));
  const auto start = std::chrono::steady_clock::now();
  const rsrtest::Result r = dump_dom(path, "#search=function_3%3C");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.code, 0) << r.err.substr(0, 2000);
  EXPECT_THAT(script_errors(r.err), testing::IsEmpty());
  const std::string dom = visible(r.out);
  EXPECT_THAT(dom, HasSubstr("data-ready=\"1\""));
  EXPECT_THAT(dom, HasSubstr(">ns::function_3&lt;\u2026&gt;()<"));
  EXPECT_THAT(match_info(dom), testing::MatchesRegex("[0-9]+ frames match, [0-9.]+% of bytes"));
  // Only frames at least half a pixel wide become elements.
  EXPECT_LT(occurrences(dom, "class=\"f"), 20000u);
  std::printf("100000 stacks loaded and drawn in %.1f s\n", seconds);
}

// Screenshots kept in the test's build directory (RSR_ARTEFACT_DIR), each beside the page it
// shows: the page with a search, and a capture's page with a time range selected.
TEST_F(Browser, Screenshots) {
  for (auto [name, model, fragment] : {std::tuple{"flamegraph", page_model(), "#search=register_session"},
                                       std::tuple{"flamegraph-range", rsrtest::timed_model(), "#range=0.1-0.7"}}) {
    const std::string artefacts = rsrtest::env_or_die("RSR_ARTEFACT_DIR");
    const std::string path = artefacts + "/" + name + ".html";
    std::ofstream(path, std::ios::binary) << html(model);
    const std::string png = artefacts + "/" + name + ".png";
    std::filesystem::remove(png);
    const rsrtest::Result r = chromium(path, fragment, {"--window-size=1400,900", "--screenshot=" + png});
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_TRUE(std::filesystem::exists(png)) << r.err;
    EXPECT_GT(std::filesystem::file_size(png), 10000u);
    std::ifstream in(png, std::ios::binary);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    EXPECT_EQ(std::string(magic, 8), "\x89PNG\r\n\x1a\n");
    std::printf("screenshot: %s\npage: %s\n", png.c_str(), path.c_str());
  }
}

}  // namespace
}  // namespace rsr::ctl
