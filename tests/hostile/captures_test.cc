// rsrmemctl's reports over hostile capture files: every report (summary, stats, table, tree,
// flamegraph, export pprof and folded), in every view, run as the real binary on files built to
// hang a careless reader (a capture or module path naming a FIFO, a device, a directory, a
// symlink to a FIFO; debug files found through a FIFO; a FIFO or a symlink where the report is
// written), to make it grow without bound (a record declaring 2^50 bytes, decompression bombs,
// endless stacks, threads and live blocks, distinct frames in code with DWARF) or to make it
// work without end (frees by the million, a maze of modules).
//
// Each run must end by itself within 20 s (it is killed otherwise), stay under a 1 GiB address
// space and a 256 MB peak RSS, exit with a documented code, and say what was wrong on stderr.
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>

#include "crafted_captures.h"
#include "ctl_run.h"
#include "elf_text.h"
#include "fake_server.h"

namespace {

using ::testing::AnyOfArray;
using ::testing::HasSubstr;

constexpr long kMaxRssKb = 256 * 1024;

struct Expect {
  std::vector<int> codes;  // documented exit codes this file may end with
  std::string err;         // what stderr must say ("" : anything)
};

class HostileCaptures : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = hostile::ctl_binary();
    if (ctl_.empty()) GTEST_SKIP() << "RSRMEMCTL not set (run through meson test)";
  }

  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_.path() + "/" + name;
    rsrtest::write_file(path, bytes);
    return path;
  }

  std::string fifo(const std::string& name) {
    const std::string path = dir_.path() + "/" + name;
    if (mkfifo(path.c_str(), 0600) != 0) ADD_FAILURE() << "mkfifo " << path;
    return path;
  }

  std::string symlink_to(const std::string& target, const std::string& name) {
    const std::string path = dir_.path() + "/" + name;
    if (symlink(target.c_str(), path.c_str()) != 0) ADD_FAILURE() << "symlink " << path;
    return path;
  }

  // Every report in every view on `file`; each run is checked and the worst is printed.
  void every_report(const std::string& label, const std::string& file, const Expect& expect) {
    const std::vector<std::vector<std::string>> reports = {
        {"summary"},
        {"stats"},
        {"table"},
        {"tree"},
        {"flamegraph", "-o", dir_.path() + "/out.html"},
        {"export", "--format", "pprof", "-o", dir_.path() + "/out.pb.gz"},
        {"export", "--format", "folded"},
    };
    double worst_s = 0;
    long worst_kb = 0;
    for (const auto& report : reports) {
      for (const char* view : {"", "--leaks", "--temporary"}) {
        std::vector<std::string> args = {ctl_};
        args.insert(args.end(), report.begin(), report.end());
        if (*view) args.push_back(view);
        args.push_back(file);
        std::string cmd;
        for (size_t i = 1; i < args.size(); ++i) cmd += (i > 1 ? " " : "") + args[i];
        const hostile::Outcome r = hostile::run(args);
        worst_s = std::max(worst_s, r.seconds);
        worst_kb = std::max(worst_kb, r.max_rss_kb);
        EXPECT_FALSE(r.killed) << label << ": rsrmemctl " << cmd << ": " << r.describe();
        EXPECT_LT(r.max_rss_kb, kMaxRssKb) << label << ": rsrmemctl " << cmd << ": " << r.describe();
        EXPECT_THAT(r.code, AnyOfArray(expect.codes))
            << label << ": rsrmemctl " << cmd << ": " << r.describe();
        if (!expect.err.empty()) {
          EXPECT_THAT(r.err, HasSubstr(expect.err))
              << label << ": rsrmemctl " << cmd << ": " << r.describe();
        }
        if (r.killed) return;  // one hang says it all; the next would take as long
      }
    }
    std::cout << "[measure] " << label << ": worst " << worst_s << " s, peak RSS "
              << static_cast<double>(worst_kb) / 1024 << " MB over 21 runs\n";
  }

  std::string ctl_;
  rsrtest::TempDir dir_;
};

// ---- The capture file itself is not a regular file ----

TEST_F(HostileCaptures, CaptureIsAFifo) {
  every_report("capture is a FIFO", fifo("profile_fifo.bin"), {{3}, "not a regular file"});
}

TEST_F(HostileCaptures, CaptureIsASymlinkToAFifo) {
  const std::string link = symlink_to(fifo("target-fifo"), "profile_link.bin");
  every_report("capture is a symlink to a FIFO", link, {{3}, "not a regular file"});
}

TEST_F(HostileCaptures, CaptureIsADevice) {
  every_report("capture is /dev/zero", "/dev/zero", {{3}, "not a regular file"});
  every_report("capture is /dev/urandom", "/dev/urandom", {{3}, "not a regular file"});
}

TEST_F(HostileCaptures, CaptureIsADirectory) {
  every_report("capture is a directory", dir_.path(), {{3}, "not a regular file"});
}

// ---- A module path names something that is not a regular file ----

TEST_F(HostileCaptures, ModuleIsAFifo) {
  const std::string path = fifo("libfifo.so");
  every_report("module is a FIFO", write("m.bin", hostile::capture_with_modules({hostile::module_at(path)})),
               {{0}, path + ": not a regular file"});
}

TEST_F(HostileCaptures, ModuleIsASymlinkToAFifo) {
  const std::string link = symlink_to(fifo("real-fifo"), "liblink.so");
  every_report("module is a symlink to a FIFO",
               write("m.bin", hostile::capture_with_modules({hostile::module_at(link)})),
               {{0}, link + ": not a regular file"});
}

TEST_F(HostileCaptures, ModuleIsADevice) {
  for (const char* dev : {"/dev/zero", "/dev/urandom"})
    every_report(std::string("module is ") + dev,
                 write("m.bin", hostile::capture_with_modules({hostile::module_at(dev)})),
                 {{0}, std::string(dev) + ": not a regular file"});
}

TEST_F(HostileCaptures, ModuleIsADirectory) {
  every_report("module is a directory",
               write("m.bin", hostile::capture_with_modules({hostile::module_at(dir_.path())})),
               {{0}, dir_.path() + ": not a regular file"});
}

TEST_F(HostileCaptures, BuildIdThatClimbsOutOfTheDebugDirectory) {
  // /usr/lib/debug/.build-id/<2>/<rest>.debug, were the build-id taken as a path.
  fifo("trap.debug");
  const std::string id = "../../../../../../.." + dir_.path() + "/trap";
  every_report("build-id is a path to a FIFO",
               write("m.bin", hostile::capture_with_modules(
                                  {hostile::module_at(dir_.path() + "/absent.so", id)})),
               {{0}, ""});
}

// A copy of a library built here whose debug file (.gnu_debuglink, a dwz .gnu_debugaltlink, a
// split-DWARF .dwo) names a FIFO beside it.
class HostileDebugFiles : public HostileCaptures {
 protected:
  // objcopy OPTION FILE, editing FILE in place; its exit status.
  static int objcopy(const std::string& option, const std::string& file) {
    return std::system(("/usr/bin/objcopy " + option + " " + file).c_str());
  }

  // Every report on a capture whose frames lie in `symbol` of a copy (`name`, in the test's
  // directory) of the library built here that $env names, once `prepare` has edited the copy
  // or its surroundings; each must say `err`. The capture maps the copy at 0x400000.
  void every_report_on_copy(const std::string& label, const char* env, const std::string& name,
                            const char* symbol, const std::string& err,
                            const std::function<void(const std::string& copy)>& prepare) {
    const char* lib = std::getenv(env);
    if (!lib || !*lib || access("/usr/bin/objcopy", X_OK) != 0)
      GTEST_SKIP() << "needs " << env << " and objcopy";
    const std::string copy = dir_.path() + "/" + name;
    {
      std::ifstream in(lib, std::ios::binary);
      std::ofstream(copy, std::ios::binary) << in.rdbuf();
    }
    prepare(copy);
    if (HasFatalFailure()) return;
    void* handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    void* fn = handle ? dlsym(handle, symbol) : nullptr;
    Dl_info info{};
    ASSERT_TRUE(fn && dladdr(fn, &info)) << "cannot find " << symbol << " in " << lib;
    const uint64_t offset =
        reinterpret_cast<uint64_t>(fn) - reinterpret_cast<uint64_t>(info.dli_fbase);
    every_report(label, write("m.bin", hostile::capture_with_modules({hostile::module_at(copy)},
                                                                     {offset + 4, offset + 8})),
                 {{0}, err});
  }
};

TEST_F(HostileDebugFiles, DebuglinkIsAFifo) {
  every_report_on_copy("debuglink names a FIFO", "RSR_NODEBUG_LIB", "libnodebug.so",
                       "rsrtest_nodebug_function", "", [&](const std::string& lib) {
    write("libnodebug.debug", "placeholder");  // objcopy reads it for the CRC
    ASSERT_EQ(objcopy("--add-gnu-debuglink=" + dir_.path() + "/libnodebug.debug", lib), 0);
    ASSERT_EQ(unlink((dir_.path() + "/libnodebug.debug").c_str()), 0);
    fifo("libnodebug.debug");
    ASSERT_EQ(mkdir((dir_.path() + "/.debug").c_str(), 0700), 0);
    fifo(".debug/libnodebug.debug");
  });
}

TEST_F(HostileDebugFiles, DebugAltlinkIsAFifo) {
  every_report_on_copy("debugaltlink names a FIFO", "RSR_DEBUG_LIB", "libdebug.so",
                       "_ZN7rsrtest14plain_functionEPVi", "alt.debug: not a regular file (a FIFO)",
                       [&](const std::string& lib) {
    std::string section = "alt.debug";
    section += '\0';
    section += std::string(20, '\x5a');  // a build-id nobody has
    write("altlink", section);
    ASSERT_EQ(objcopy("--add-section .gnu_debugaltlink=" + dir_.path() + "/altlink", lib), 0);
    fifo("alt.debug");
  });
}

TEST_F(HostileDebugFiles, SplitDwarfFileIsAFifo) {
  every_report_on_copy("split DWARF file is a FIFO", "RSR_SPLIT_LIB", "libsplit.so",
                       "rsrtest_split_function", "", [&](const std::string& lib) {
    // Each skeleton unit's .dwo, where libdw looks first (beside the library), becomes a FIFO.
    const int fd = open(lib.c_str(), O_RDONLY);
    Dwarf* dw = dwarf_begin(fd, DWARF_C_READ);
    ASSERT_NE(dw, nullptr);
    int fifos = 0;
    Dwarf_CU* cu = nullptr;
    uint8_t unit_type = 0;
    Dwarf_Die cudie;
    while (dwarf_get_units(dw, cu, &cu, nullptr, &unit_type, &cudie, nullptr) == 0) {
      Dwarf_Attribute attr;
      const char* name = nullptr;
      if (dwarf_attr(&cudie, DW_AT_dwo_name, &attr) || dwarf_attr(&cudie, DW_AT_GNU_dwo_name, &attr))
        name = dwarf_formstring(&attr);
      if (!name || name[0] == '/') continue;
      std::string path = dir_.path() + "/" + name;
      for (size_t slash = path.find('/', dir_.path().size() + 1); slash != std::string::npos;
           slash = path.find('/', slash + 1))
        mkdir(path.substr(0, slash).c_str(), 0700);
      if (mkfifo(path.c_str(), 0600) == 0) ++fifos;
    }
    dwarf_end(dw);
    close(fd);
    ASSERT_GT(fifos, 0) << "no split units in " << lib;
  });
}

// ---- Declared lengths, counts and sizes out of all proportion ----

TEST_F(HostileCaptures, RecordDeclaringTwoToTheFiftyBytes) {
  const std::string path = write("huge_record.bin", hostile::huge_record(uint64_t{2} << 30));
  every_report("record declaring 2^50 bytes", path, {{0}, "record"});
}

TEST_F(HostileCaptures, DecompressionBombOfSkippedRecords) {
  const std::string path = write("zero_bomb.bin", hostile::zero_bomb(uint64_t{16} << 30));
  every_report("16 GiB of zeros in 512 KiB", path, {{0}, "decompress"});
}

TEST_F(HostileCaptures, AllocationsThatStayLive) {
  // 128 Ki records per frame, 2,000 frames: 262 M live blocks declared in about 1 MB.
  const std::string path = write("alloc_bomb.bin", hostile::alloc_bomb(2000));
  every_report("alloc bomb", path, {{0}, "stopped reading"});
}

TEST_F(HostileCaptures, FreesByTheHundredMillion) {
  const std::string path = write("free_storm.bin", hostile::free_storm(1000));
  every_report("free storm", path, {{0}, "stopped reading"});
}

TEST_F(HostileCaptures, StacksOfAHundredThousandFrames) {
  const std::string path = write("stack_bomb.bin", hostile::stack_bomb(100000, 400));
  every_report("stack bomb", path, {{0}, "frames"});
}

TEST_F(HostileCaptures, ThreadsWithLongNames) {
  const std::string path = write("thread_bomb.bin", hostile::thread_bomb(4096, 100000));
  every_report("thread bomb", path, {{0}, "stopped reading"});
}

TEST_F(HostileCaptures, MazeOfModules) {
  const std::string path = write("maze.bin", hostile::module_maze(100000, 100000, dir_.path()));
  every_report("module maze", path, {{0}, "module"});
}

TEST_F(HostileCaptures, DistinctFramesInCodeWithDwarf) {
  // 400,000 distinct addresses in rsrmemctl's own code (DWARF, long C++ names): symbolizing them
  // all took minutes and gigabytes. The largest stacks are symbolized, the rest are not, and the
  // warning says why.
  const hostile::Text text = hostile::text_of(ctl_);
  ASSERT_GT(text.size, 1u << 16);
  const std::string path =
      write("frames.bin", hostile::frames_in(ctl_, text.address, text.size, 400000));
  every_report("400,000 distinct frames in code with DWARF", path, {{0}, "not symbolized"});
}

TEST_F(HostileCaptures, DeeplyNestedHeaderJson) {
  const std::string path = write("deep.bin", hostile::deep_json_header(400000));
  every_report("deeply nested header JSON", path, {{0, 2}, ""});
}

// ---- What the reports write: FILE.html and FILE.pb.gz beside the capture ----

// The capture may sit in a shared directory: a symlink planted at the output's made-up name is
// not followed (its target is not overwritten) and a FIFO there does not block the report.
TEST_F(HostileCaptures, MadeUpOutputNamesAreNotFollowedOrBlocking) {
  const std::string capture =
      write("profile_x.bin", hostile::capture_with_modules({hostile::module_at("/nonexistent.so")}));
  const std::string victim = write("victim", "keep me");
  for (const std::string suffix : {".html", ".pb.gz"}) {
    const std::vector<std::string> report =
        suffix == ".html" ? std::vector<std::string>{ctl_, "flamegraph", capture}
                          : std::vector<std::string>{ctl_, "export", "--format", "pprof", capture};
    const std::string out = dir_.path() + "/profile_x" + suffix;
    ASSERT_EQ(symlink(victim.c_str(), out.c_str()), 0);
    hostile::Outcome r = hostile::run(report);
    EXPECT_EQ(r.code, 3) << r.describe();
    EXPECT_THAT(r.err, HasSubstr(out + ": it is a symbolic link")) << r.describe();
    std::ifstream in(victim);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep me");
    ASSERT_EQ(unlink(out.c_str()), 0);
    fifo("profile_x" + suffix);
    r = hostile::run(report);
    EXPECT_FALSE(r.killed) << r.describe();
    EXPECT_EQ(r.code, 3) << r.describe();
    EXPECT_THAT(r.err, HasSubstr(out + ": it is a FIFO")) << r.describe();
    ASSERT_EQ(unlink(out.c_str()), 0);
  }
}

// ---- Damaged files: clear errors or warnings, as before ----

TEST_F(HostileCaptures, DamagedAndTruncatedFiles) {
  const std::string good = hostile::capture_with_modules({hostile::module_at("/nonexistent.so")});
  every_report("cut short", write("cut.bin", good.substr(0, good.size() - 7)),
               {{0}, "capture truncated"});
  every_report("garbage after the header",
               write("garbage.bin", hostile::file_header() + std::string(4096, '\x5a')),
               {{2}, "no readable capture header"});
  every_report("empty file", write("empty.bin", ""), {{2}, "not an rsrmem capture"});
}

}  // namespace
