// The folded and pprof exports. pprof files are read back by Go's own pprof (`go tool pprof`,
// Debian's golang-go) when it is installed, and always by a small profile.proto reader here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "call_tree.h"
#include "report_export.h"
#include "report_test_models.h"
#include "subprocess.h"

namespace rsr::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kGo = "/usr/bin/go";

std::string folded(const ProfileModel& m, bool by_count) {
  std::ostringstream out;
  write_folded(m, out, by_count);
  return out.str();
}

TEST(Folded, BytesRootFirstSortedWithSemicolonsReplaced) {
  EXPECT_EQ(folded(rsrtest::small_model(), false),
            "main;</script><script>alert(\"x&y\")</script>;operator new(unsigned long) 300\n"
            "main;handler<a:b>::run() 50\n"
            "main;register_session(Session const&);"
            "std::vector<int, std::allocator<int> >::push_back(int const&);"
            "operator new(unsigned long) 1000\n");
}

TEST(Folded, CountsIncludeZeroByteAllocations) {
  EXPECT_EQ(folded(rsrtest::small_model(), true),
            "main;</script><script>alert(\"x&y\")</script>;operator new(unsigned long) 3\n"
            "main;handler<a:b>::run() 5\n"
            "main;register_session(Session const&);"
            "std::vector<int, std::allocator<int> >::push_back(int const&);"
            "operator new(unsigned long) 10\n"
            "main;zero_sized() 2\n");
}

TEST(Folded, StacksWithTheSameNamesMergeAndTotalsAreKept) {
  ProfileModel m = rsrtest::small_model();
  m.stacks.push_back(m.stacks[2]);  // same names, another address
  m.stacks.back().frames[0].address = 0x401310;
  m.stacks.push_back({{}, 7, 1});  // no frames at all
  m.stacks.push_back({{rsrtest::frame(0x401500, "f\nline;two", "", 0, "")}, 11, 1});
  const std::string out = folded(m, false);
  EXPECT_THAT(out, HasSubstr("main;handler<a:b>::run() 100\n"));
  EXPECT_THAT(out, HasSubstr("[unknown] 7\n"));
  EXPECT_THAT(out, HasSubstr("f line:two 11\n"));
  uint64_t total = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) total += std::stoull(line.substr(line.rfind(' ')));
  EXPECT_EQ(total, 1350u + 50 + 7 + 11);
}

// A reader for the parts of profile.proto the tests look at.
struct Field {
  int number = 0;
  uint64_t varint = 0;
  std::string bytes;  // length-delimited payload
};

std::vector<Field> fields(const std::string& msg) {
  std::vector<Field> out;
  size_t i = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; i < msg.size(); shift += 7) {
      const auto b = static_cast<uint8_t>(msg[i++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  };
  while (i < msg.size()) {
    const uint64_t key = varint();
    Field f;
    f.number = static_cast<int>(key >> 3);
    if ((key & 7) == 0) {
      f.varint = varint();
    } else if ((key & 7) == 2) {
      const uint64_t n = varint();
      f.bytes = msg.substr(i, n);
      i += n;
    } else {
      ADD_FAILURE() << "unexpected wire type " << (key & 7);
      return out;
    }
    out.push_back(f);
  }
  return out;
}

std::string gunzip(const std::string& gz) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[4096];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

std::string pprof_bytes(const ProfileModel& m) {
  std::ostringstream out;
  write_pprof(m, out);
  return out.str();
}

// The call tree `tree`, the flamegraph page and the folded export are made of: frames of sibling
// calls merge when function, file, module and inlined-ness agree, whatever their lines.
TEST(CallTreeModel, MergesSiblingCallsAcrossLinesAndKeepsSelfTotals) {
  const ProfileModel m = rsrtest::small_model();
  const CallTree tree(m);
  const auto& root = tree.nodes()[CallTree::kRoot];
  EXPECT_EQ(root.bytes, 1350u);
  EXPECT_EQ(root.count, 20u);
  const std::vector<uint32_t> top = tree.children(CallTree::kRoot);
  ASSERT_EQ(top.size(), 1u);  // main at lines 10 and 12: one node
  EXPECT_EQ(tree.function(top[0]), "main");
  EXPECT_EQ(tree.nodes()[top[0]].line, CallTree::kSeveralLines);
  const std::vector<uint32_t> calls = tree.children(top[0]);
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(tree.function(calls[0]), rsrtest::kRegister);  // largest first
  EXPECT_EQ(tree.nodes()[calls[0]].line, 42);
  EXPECT_EQ(tree.self_bytes(calls[0]), 0u);
  EXPECT_EQ(tree.self_bytes(tree.leaf(0)), 1000u);
  EXPECT_EQ(tree.self_count(tree.leaf(3)), 2u);  // zero-sized allocations count
  EXPECT_EQ(tree.nodes()[tree.leaf(0)].depth, 4u);
  const std::vector<uint32_t> order = tree.preorder();
  ASSERT_EQ(order.size(), tree.nodes().size());
  EXPECT_EQ(order[0], CallTree::kRoot);
  EXPECT_EQ(order[1], top[0]);
  EXPECT_EQ(order[2], calls[0]);
}

TEST(Pprof, GzippedProfileWithStringTableAndSampleTypes) {
  const std::string gz = pprof_bytes(rsrtest::small_model());
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(gz[1]), 0x8b);
  const std::string raw = gunzip(gz);
  EXPECT_EQ(raw, encode_pprof(rsrtest::small_model()));

  std::vector<std::string> strings;
  std::vector<std::string> sample_types;
  std::map<int, uint64_t> scalars;
  int samples = 0, locations = 0, functions = 0, mappings = 0;
  const std::vector<Field> top = fields(raw);
  for (const Field& f : top)
    if (f.number == 6) strings.push_back(f.bytes);
  ASSERT_FALSE(strings.empty());
  EXPECT_EQ(strings[0], "");
  for (const Field& f : top) {
    switch (f.number) {
      case 1: sample_types.push_back(strings.at(fields(f.bytes).at(0).varint)); break;
      case 2: ++samples; break;
      case 3: ++mappings; break;
      case 4: ++locations; break;
      case 5: ++functions; break;
      default: scalars[f.number] = f.varint;
    }
  }
  EXPECT_EQ(sample_types, (std::vector<std::string>{"alloc_objects", "alloc_space"}));
  EXPECT_EQ(strings.at(scalars[14]), "alloc_space");  // default_sample_type
  EXPECT_EQ(scalars[9], 1700000000250000000u);        // time_nanos
  EXPECT_EQ(scalars[10], 12500000000u);               // duration_nanos
  EXPECT_EQ(samples, 4);
  EXPECT_EQ(mappings, 2);
  // operator new, push_back+register_session, main:10, the </script> one, main:12, handler,
  // zero_sized: one location per address.
  EXPECT_EQ(locations, 7);
  // main counts once: a function is its name and file.
  EXPECT_EQ(functions, 7);
}

class GoPprof : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kGo, X_OK), 0) << kGo << " is not installed (Debian golang-go; scripts/bootstrap installs it)";
    char tmpl[] = "/tmp/rsr-pprof-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // `go tool pprof ARGS file` on the model's export; fails the test unless pprof succeeds.
  std::string pprof(const ProfileModel& m, const std::vector<std::string>& args) {
    const std::string path = dir_ + "/profile.pb.gz";
    {
      std::ofstream out(path, std::ios::binary);
      write_pprof(m, out);
    }
    std::vector<std::string> argv = {kGo, "tool", "pprof"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(path);
    const rsrtest::Result r =
        rsrtest::run(argv, {{"HOME", dir_}, {"GOCACHE", dir_ + "/gocache"},
                            {"PPROF_TMPDIR", dir_}, {"GOFLAGS", ""}});
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  }

  // The sample type header of `pprof -raw` and the sum of each value column.
  static std::pair<std::string, std::vector<uint64_t>> raw_samples(const std::string& raw) {
    std::istringstream in(raw);
    std::string line, header;
    std::vector<uint64_t> sums;
    while (std::getline(in, line) && line != "Samples:") {}
    std::getline(in, header);
    while (std::getline(in, line) && line.find(':') != std::string::npos && line[0] == ' ') {
      std::istringstream values(line.substr(0, line.find(':')));
      uint64_t v;
      for (size_t k = 0; values >> v; ++k) {
        if (sums.size() <= k) sums.push_back(0);
        sums[k] += v;
      }
    }
    return {header, sums};
  }

  std::string dir_;
};

TEST_F(GoPprof, RawShowsAllocSampleTypesTotalsAndFunctions) {
  const std::string raw = pprof(rsrtest::small_model(), {"-raw"});
  const auto [types, sums] = raw_samples(raw);
  EXPECT_EQ(types, "alloc_objects/count alloc_space/bytes[dflt]");
  EXPECT_EQ(sums, (std::vector<uint64_t>{20, 1350}));
  EXPECT_THAT(raw, HasSubstr("PeriodType: space bytes"));
  EXPECT_THAT(raw, HasSubstr("register_session(Session const&) src/sessions.cc:42"));
  EXPECT_THAT(raw, HasSubstr("operator new(unsigned long)"));
  EXPECT_THAT(raw, HasSubstr(rsrtest::kPushBack));
  EXPECT_THAT(raw, HasSubstr(rsrtest::kEvil));
  EXPECT_THAT(raw, HasSubstr("/usr/bin/demo-service abcd1234"));
  EXPECT_THAT(raw, HasSubstr("Comment: truncated: the capture ended early (size_limit)"));
  // The inlined push_back and the register_session containing it are one location: its second
  // line follows on a line of its own.
  EXPECT_THAT(raw, testing::ContainsRegex(
                       "0x401100 M=1 std::vector::push_back /usr/include/c\\+\\+/12/bits/"
                       "stl_vector.h:1287[^\n]*\n +register_session\\(Session const&\\) "
                       "src/sessions.cc:42"));
}

TEST_F(GoPprof, TracesMarkInlinedFramesInnermostFirst) {
  const std::string traces = pprof(rsrtest::small_model(), {"-traces"});
  EXPECT_THAT(traces, testing::ContainsRegex(
                          "operator new\\(unsigned long\\)\n +std::vector::push_back \\(inline\\)\n"
                          " +register_session\\(Session const&\\)\n +main\n"));
  EXPECT_THAT(traces, HasSubstr("Type: alloc_space"));
}

TEST_F(GoPprof, TopTotalsPerSampleType) {
  EXPECT_THAT(pprof(rsrtest::small_model(), {"-top", "-sample_index=alloc_objects"}),
              HasSubstr("of 20 total"));
  const std::string top = pprof(rsrtest::small_model(), {"-top", "-sample_index=alloc_space"});
  EXPECT_THAT(top, HasSubstr("of 1350B total"));
  EXPECT_THAT(top, HasSubstr("operator new(unsigned long)"));
}

TEST_F(GoPprof, LeaksViewUsesInuseSampleTypes) {
  const std::string raw = pprof(rsrtest::small_model(ProfileView::kLeaks), {"-raw"});
  const auto [types, sums] = raw_samples(raw);
  EXPECT_EQ(types, "inuse_objects/count inuse_space/bytes[dflt]");
  EXPECT_EQ(sums, (std::vector<uint64_t>{20, 1350}));
  EXPECT_THAT(raw, Not(HasSubstr("alloc_space")));
}

TEST_F(GoPprof, TemporaryViewAndEmptyModelsAreReadable) {
  ProfileModel m = rsrtest::small_model(ProfileView::kTemporary);
  EXPECT_THAT(pprof(m, {"-raw"}), HasSubstr("alloc_objects/count alloc_space/bytes[dflt]"));
  m.stacks.clear();
  m.modules.clear();
  EXPECT_THAT(pprof(m, {"-raw"}), HasSubstr("alloc_objects/count alloc_space/bytes[dflt]"));
}

TEST_F(GoPprof, LargeModelTotals) {
  const ProfileModel m = rsrtest::large_model(20000);
  uint64_t bytes = 0, count = 0;
  for (const ProfileStack& s : m.stacks) {
    bytes += s.bytes;
    count += s.count;
  }
  const auto [types, sums] = raw_samples(pprof(m, {"-raw"}));
  EXPECT_EQ(sums, (std::vector<uint64_t>{count, bytes}));
}

}  // namespace
}  // namespace rsr::ctl
