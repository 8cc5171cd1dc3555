// The symbolizer against code with known source lines: DWARF functions, lines and inlined
// frames, the ELF symbol table without DWARF, build-id checks and the fallbacks.
#include "symbolizer.h"

#include <dlfcn.h>
#include <stdio.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "format.h"
#include "module_map.h"
#include "symbolizer_fixture.h"

namespace {

using rsr::ctl::base_name;
using rsr::ctl::ModuleInfo;
using rsr::ctl::Symbolizer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

uint64_t addr(void* p) { return reinterpret_cast<uint64_t>(p); }

TEST(Symbolizer, FunctionFileAndLineFromDwarf) {
  volatile int sink = 0;
  void* ra = rsrtest::plain_function(&sink);
  const ModuleInfo module = rsrtest::module_of(ra);
  ASSERT_EQ(base_name(module.path), "libsymfixture.so");
  ASSERT_FALSE(module.build_id.empty());

  Symbolizer symbolizer({module});
  const auto& f = symbolizer.symbolize(addr(ra));
  EXPECT_EQ(f.function, "rsrtest::plain_function(int volatile*)");
  EXPECT_EQ(base_name(f.file), "symbolizer_fixture.cc");
  EXPECT_EQ(f.line, rsrtest::plain_call_line);
  EXPECT_TRUE(f.inlined.empty());
  EXPECT_EQ(f.module, module.path);
  EXPECT_EQ(f.module_offset, addr(ra) - module.base);
  EXPECT_EQ(f.note, "");
  EXPECT_TRUE(symbolizer.problems().empty());
}

TEST(Symbolizer, InlinedFrames) {
  volatile int sink = 0;
  void* ra = rsrtest::outer_function(&sink);
  Symbolizer symbolizer({rsrtest::module_of(ra)});
  const auto& f = symbolizer.symbolize(addr(ra));
  // The out-of-line function, at the line where the helper was inlined into it ...
  EXPECT_EQ(f.function, "rsrtest::outer_function(int volatile*)");
  EXPECT_EQ(base_name(f.file), "symbolizer_fixture.cc");
  EXPECT_EQ(f.line, rsrtest::outer_call_line);
  // ... and the inlined helper, at the line executing inside it.
  ASSERT_EQ(f.inlined.size(), 1u);
  EXPECT_THAT(f.inlined[0].function, HasSubstr("rsrtest::inlined_helper"));
  EXPECT_EQ(base_name(f.inlined[0].file), "symbolizer_fixture.cc");
  EXPECT_EQ(f.inlined[0].line, rsrtest::inlined_call_line);
}

TEST(Symbolizer, SymbolTableWithoutDwarf) {
  volatile int sink = 0;
  void* ra = rsrtest_nodebug_function(&sink);
  const ModuleInfo module = rsrtest::module_of(ra);
  ASSERT_EQ(base_name(module.path), "libsymfixture_nodebug.so");
  Symbolizer symbolizer({module});
  const auto& f = symbolizer.symbolize(addr(ra));
  EXPECT_EQ(f.function, "rsrtest_nodebug_function");
  EXPECT_EQ(f.file, "");
  EXPECT_EQ(f.line, 0);
}

TEST(Symbolizer, MainExecutable) {
  // A function of this test program itself (a PIE: its load bias is not zero).
  const ModuleInfo module = rsrtest::module_of(reinterpret_cast<void*>(&rsrtest::module_of));
  ASSERT_FALSE(module.path.empty());
  Symbolizer symbolizer({module});
  // +1: symbolize() treats addresses as return addresses and looks one byte back.
  const auto& f = symbolizer.symbolize(addr(reinterpret_cast<void*>(&rsrtest::module_of)) + 1);
  EXPECT_THAT(f.function, HasSubstr("rsrtest::module_of"));
  EXPECT_EQ(base_name(f.file), "module_map.h");
  EXPECT_GT(f.line, 0);
}

TEST(Symbolizer, FileLinkedAtANonZeroAddress) {
  // The load bias is then the load address minus 0x400000; a symbolizer that treats the bias as
  // the load address gets every address wrong.
  void* handle = dlopen(RSR_HIGHADDR_LIB, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  auto plain =
      reinterpret_cast<void* (*)(volatile int*)>(dlsym(handle, "_ZN7rsrtest14plain_functionEPVi"));
  ASSERT_NE(plain, nullptr);
  volatile int sink = 0;
  void* ra = plain(&sink);
  const ModuleInfo module = rsrtest::module_of(ra);
  ASSERT_EQ(base_name(module.path), "libsymfixture_highaddr.so");
  ASSERT_EQ(module.start - module.base, 0x400000u);
  Symbolizer symbolizer({module});
  const auto& f = symbolizer.symbolize(addr(ra));
  EXPECT_EQ(f.function, "rsrtest::plain_function(int volatile*)");
  // The same source as libsymfixture.so; its line variable resolves to that library's copy.
  EXPECT_EQ(f.line, rsrtest::plain_call_line);
  EXPECT_EQ(base_name(f.file), "symbolizer_fixture.cc");
  EXPECT_EQ(f.module_offset, addr(ra) - module.base);
  dlclose(handle);
}

TEST(Symbolizer, BuildIdMismatchIsNotTrusted) {
  volatile int sink = 0;
  void* ra = rsrtest::plain_function(&sink);
  ModuleInfo module = rsrtest::module_of(ra);
  module.build_id = "00112233445566778899aabbccddeeff00112233";
  Symbolizer symbolizer({module});
  const auto& f = symbolizer.symbolize(addr(ra));
  EXPECT_EQ(f.function, "");
  EXPECT_EQ(f.note, "build-id mismatch");
  EXPECT_EQ(
      f.display_name(), "libsymfixture.so+0x" + [&] {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%llx",
                      static_cast<unsigned long long>(addr(ra) - module.base));
        return std::string(buf);
      }());
  ASSERT_EQ(symbolizer.problems().size(), 1u);
  EXPECT_THAT(symbolizer.problems()[0], HasSubstr("the process loaded 0011223344"));
}

TEST(Symbolizer, MissingFileAndUnknownAddress) {
  Symbolizer symbolizer(
      {ModuleInfo{"/nonexistent/libgone.so", "", 0x10000, 0x10000, 0x20000, false}});
  const auto& in_module = symbolizer.symbolize(0x10234);
  EXPECT_EQ(in_module.display_name(), "libgone.so+0x234");
  EXPECT_EQ(in_module.note, "no readable file");
  const auto& nowhere = symbolizer.symbolize(0x5000);
  EXPECT_EQ(nowhere.display_name(), "0x5000");
  EXPECT_EQ(nowhere.module, "");
}

TEST(Symbolizer, CachesPerAddress) {
  volatile int sink = 0;
  void* ra = rsrtest::plain_function(&sink);
  Symbolizer symbolizer({rsrtest::module_of(ra)});
  const auto* first = &symbolizer.symbolize(addr(ra));
  const auto* second = &symbolizer.symbolize(addr(ra));
  EXPECT_EQ(first, second);
}

TEST(Symbolizer, PrefersTheLoadedModuleOfTwoWithTheSameRange) {
  volatile int sink = 0;
  void* ra = rsrtest::plain_function(&sink);
  ModuleInfo live = rsrtest::module_of(ra);
  ModuleInfo old{"/nonexistent/libold.so", "", live.base, live.start, live.end, false};
  Symbolizer symbolizer({old, live});
  EXPECT_EQ(symbolizer.symbolize(addr(ra)).function, "rsrtest::plain_function(int volatile*)");
}

// _start (crt1, no DWARF) follows main's unit when main is in .text.startup (-O2). libdwfl
// gives an address past a unit's end that unit's last line (it was shown as std_thread.h:142 and
// basic_string.h:795): _start is shown as _start, with no file and line.
TEST(Symbolizer, StartHasNoLineOfTheUnitBeforeIt) {
  FILE* p = popen(RSR_START_FIXTURE, "r");
  ASSERT_NE(p, nullptr);
  char path[4096] = {};
  unsigned long bias = 0, start = 0, end = 0, ra = 0;
  const int n = std::fscanf(p, "%4095s %lx %lx %lx %lx", path, &bias, &start, &end, &ra);
  pclose(p);
  if (n == 1 && std::string(path) == "unsupported") GTEST_SKIP() << "not x86-64 crt1";
  ASSERT_EQ(n, 5);
  Symbolizer symbolizer({ModuleInfo{path, "", bias, start, end, true}});
  const auto& f = symbolizer.symbolize(ra);
  EXPECT_EQ(f.function, "_start");
  EXPECT_EQ(f.file, "");
  EXPECT_EQ(f.line, 0);
  EXPECT_TRUE(f.inlined.empty());
}

TEST(Demangle, CppAndPlainNames) {
  EXPECT_EQ(rsr::ctl::demangle("_ZN3foo3barEv"), "foo::bar()");
  EXPECT_EQ(rsr::ctl::demangle("main"), "main");
  EXPECT_EQ(rsr::ctl::demangle("_Znot_valid"), "_Znot_valid");
  EXPECT_EQ(rsr::ctl::demangle(nullptr), "");
}

}  // namespace
