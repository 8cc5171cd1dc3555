// Locating librsrmem.so for `run`, and composing LD_PRELOAD.
#include "run.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>

#include "errors.h"
#include "fake_server.h"

namespace {

using namespace rsr::ctl;
using ::testing::HasSubstr;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

void touch(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::system(("mkdir -p '" + path.substr(0, slash) + "'").c_str());
  std::ofstream(path) << "";
}

TEST(FindPreload, ExplicitPathWins) {
  rsrtest::TempDir dir;
  touch(dir.path() + "/custom/librsrmem.so");
  touch(dir.path() + "/preload/librsrmem.so");
  EXPECT_EQ(find_preload_library(
                env_of({{"RSR_PRELOAD_LIB", dir.path() + "/custom/../custom/librsrmem.so"}}),
                dir.path() + "/ctl/rsrmemctl"),
            dir.path() + "/custom/librsrmem.so");
}

TEST(FindPreload, ExplicitPathMustExist) {
  try {
    find_preload_library(env_of({{"RSR_PRELOAD_LIB", "/nonexistent/librsrmem.so"}}),
                         "/usr/bin/rsrmemctl");
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("RSR_PRELOAD_LIB=/nonexistent/librsrmem.so: no readable file"));
  }
}

TEST(FindPreload, BuildTreeThenInstalledLayouts) {
  rsrtest::TempDir dir;
  const std::string exe = dir.path() + "/bin/rsrmemctl";
  touch(exe);  // the executable's directory must exist for bin/../lib to resolve
  // Installed, the library sits in a private directory under libdir (it is not a library to
  // link against, and ld.so's path must not offer it).
  touch(dir.path() + "/lib/librsrmem.so");
  touch(dir.path() + "/lib/x86_64-linux-gnu/librsrmem.so");
  EXPECT_THROW(find_preload_library(env_of({}), exe), CtlError);
  touch(dir.path() + "/lib/rsrmem/librsrmem.so");
  EXPECT_EQ(find_preload_library(env_of({}), exe), dir.path() + "/lib/rsrmem/librsrmem.so");
  touch(dir.path() + "/lib/x86_64-linux-gnu/rsrmem/librsrmem.so");
  EXPECT_EQ(find_preload_library(env_of({}), exe),
            dir.path() + "/lib/x86_64-linux-gnu/rsrmem/librsrmem.so");
  touch(dir.path() + "/preload/librsrmem.so");
  EXPECT_EQ(find_preload_library(env_of({}), exe), dir.path() + "/preload/librsrmem.so");
}

TEST(FindPreload, NothingFoundListsWhereItLooked) {
  rsrtest::TempDir dir;
  try {
    find_preload_library(env_of({}), dir.path() + "/bin/rsrmemctl");
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("cannot find librsrmem.so"));
    EXPECT_THAT(e.what(), HasSubstr(dir.path() + "/bin/../preload/librsrmem.so"));
    EXPECT_THAT(e.what(), HasSubstr(dir.path() + "/bin/../lib/rsrmem/librsrmem.so"));
    EXPECT_THAT(e.what(), HasSubstr("set RSR_PRELOAD_LIB"));
  }
}

TEST(LdPreload, PrependsAndRemovesDuplicates) {
  EXPECT_EQ(prepend_ld_preload("/l/librsrmem.so", nullptr), "/l/librsrmem.so");
  EXPECT_EQ(prepend_ld_preload("/l/librsrmem.so", ""), "/l/librsrmem.so");
  EXPECT_EQ(prepend_ld_preload("/l/librsrmem.so", "/x/a.so"), "/l/librsrmem.so:/x/a.so");
  EXPECT_EQ(prepend_ld_preload("/l/librsrmem.so", "/x/a.so /l/librsrmem.so:/y/b.so"),
            "/l/librsrmem.so:/x/a.so:/y/b.so");
}

}  // namespace
