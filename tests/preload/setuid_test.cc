// Setuid programs (AT_SECURE): the library must pass every call through and open nothing.
//
// The dynamic loader only preloads a library into a setuid program from a standard directory
// and when the library itself has the set-user-ID bit, so the test installs a copy there for
// its duration (root only, as CI runs) and removes it afterwards.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "harness.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kTrustedDir = "/usr/lib/x86_64-linux-gnu";
constexpr uid_t kNobody = 65534;

struct RemoveOnExit {
  std::vector<fs::path> paths;
  ~RemoveOnExit() {
    std::error_code ec;
    for (const auto& p : paths) fs::remove_all(p, ec);
  }
};

TEST(Setuid, LibraryPassesThroughAndOpensNothing) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to install a setuid program";
  if (!fs::is_directory(kTrustedDir)) GTEST_SKIP() << kTrustedDir << " missing";
  RemoveOnExit cleanup;
  const std::string lib_name = "librsrmem-setuid-test-" + std::to_string(getpid()) + ".so";
  const fs::path lib = fs::path(kTrustedDir) / lib_name;
  fs::copy_file(rt::preload_lib(), lib, fs::copy_options::overwrite_existing);
  cleanup.paths.push_back(lib);
  ASSERT_EQ(chmod(lib.c_str(), 04755), 0);

  // A world-readable directory holding a setuid-root copy of the idle program.
  const fs::path dir = fs::temp_directory_path() / ("rsrmem-setuid-" + std::to_string(getpid()));
  fs::create_directories(dir);
  cleanup.paths.push_back(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  const fs::path prog = dir / "idle";
  fs::copy_file(rt::program("idle"), prog, fs::copy_options::overwrite_existing);
  ASSERT_EQ(chown(prog.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(prog.c_str(), 04755), 0);

  const fs::path sockets = dir / "sockets";
  fs::create_directories(sockets);
  ASSERT_EQ(chmod(sockets.c_str(), 0777), 0);

  rt::Spawn s;
  s.argv = {prog.string()};
  s.preload = false;  // LD_PRELOAD set by hand: a bare name, as the loader requires here
  s.env["LD_PRELOAD"] = lib_name;
  s.env["RSR_SOCKET_DIR"] = sockets.string();
  s.uid = kNobody;
  s.gid = kNobody;
  rt::Process p(s);
  ASSERT_TRUE(p.started());
  auto line = p.read_line(10000);
  ASSERT_TRUE(line) << p.describe();
  ASSERT_EQ(line->rfind("ready ", 0), 0u) << *line;

  // The library is in the process (the test would prove nothing otherwise)...
  EXPECT_TRUE(rt::maps_contain(p.pid(), lib_name)) << "the loader did not preload the library";
  // ...and it opened nothing: no socket in the configured directory nor in root's default one.
  usleep(300 * 1000);
  EXPECT_TRUE(rt::list_dir(sockets.string()).empty());
  EXPECT_FALSE(fs::exists("/tmp/rsrmem-0/" + std::to_string(p.pid()) + ".sock"));
  p.close_stdin();
  auto status = p.wait(10000);
  ASSERT_TRUE(status) << p.describe();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << p.describe();
}

}  // namespace
