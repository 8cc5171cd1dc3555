// Socket discovery and target selection: where sockets are looked for, which files count, and
// that clean-up removes only what is safe to remove.
#include "target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

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

// A socket file with no listener, as a killed process leaves it.
void make_dead_socket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
  close(fd);
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Far above any pid_max: kill() says ESRCH.
constexpr pid_t kDeadPid = 2147480000;

TEST(SocketDir, Precedence) {
  EXPECT_EQ(
      resolve_socket_dir(
          env_of({{"RSR_SOCKET_DIR", "/srv/socks"}, {"XDG_RUNTIME_DIR", "/run/user/1000"}}), 1000),
      "/srv/socks");
  EXPECT_EQ(resolve_socket_dir(env_of({{"XDG_RUNTIME_DIR", "/run/user/1000"}}), 1000),
            "/run/user/1000/rsrmem");
  EXPECT_EQ(resolve_socket_dir(env_of({}), 1000), "/tmp/rsrmem-1000");
  EXPECT_EQ(resolve_socket_dir(env_of({}), 0), "/tmp/rsrmem-0");
}

TEST(SocketDir, FollowsThePreloadsParsing) {
  // A trailing comment and blanks are dropped, as common/config does for every setting.
  EXPECT_EQ(resolve_socket_dir(env_of({{"RSR_SOCKET_DIR", " /srv/socks/  # ours"}}), 5),
            "/srv/socks");
  // Relative or empty values are ignored, as are relative XDG_RUNTIME_DIRs (XDG spec).
  EXPECT_EQ(resolve_socket_dir(
                env_of({{"RSR_SOCKET_DIR", "socks"}, {"XDG_RUNTIME_DIR", "/run/user/5/"}}), 5),
            "/run/user/5/rsrmem");
  EXPECT_EQ(resolve_socket_dir(env_of({{"RSR_SOCKET_DIR", ""}, {"XDG_RUNTIME_DIR", "run"}}), 5),
            "/tmp/rsrmem-5");
}

TEST(SocketName, OnlyDigitsDotSock) {
  EXPECT_EQ(pid_from_socket_name("1234.sock"), 1234);
  EXPECT_EQ(pid_from_socket_name("1.sock"), 1);
  EXPECT_EQ(pid_from_socket_name(".sock"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("0.sock"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("0123.sock"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("12a.sock"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("-12.sock"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("12.sock.bak"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("12.socket"), std::nullopt);
  EXPECT_EQ(pid_from_socket_name("99999999999.sock"), std::nullopt);
}

TEST(Scan, ListsPidSocketsSortedAndIgnoresTheRest) {
  rsrtest::TempDir dir;
  for (const char* name : {"300.sock", "20.sock", "notes.txt", "x.sock"})
    std::ofstream(dir.path() + "/" + name) << "";
  const auto files = scan_socket_dir(dir.path());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].pid, 20);
  EXPECT_EQ(files[0].path, dir.path() + "/20.sock");
  EXPECT_EQ(files[1].pid, 300);
  EXPECT_TRUE(scan_socket_dir(dir.path() + "/missing").empty());
}

// A directory per service one level down (systemd's RuntimeDirectory=rsrmem/%N): its sockets
// are found by --all and --pid; a service directory others may write is passed over.
TEST(Scan, FindsSocketsInServiceDirectoriesOneLevelDown) {
  rsrtest::TempDir dir;
  for (const char* sub : {"/api", "/worker", "/open", "/api/deeper"}) ASSERT_EQ(mkdir((dir.path() + sub).c_str(), 0750), 0);
  ASSERT_EQ(chmod((dir.path() + "/open").c_str(), 0777), 0);
  make_dead_socket(dir.path() + "/10.sock");
  make_dead_socket(dir.path() + "/api/20.sock");
  make_dead_socket(dir.path() + "/worker/30.sock");
  make_dead_socket(dir.path() + "/open/40.sock");         // anyone could have put it there
  make_dead_socket(dir.path() + "/api/deeper/50.sock");  // two levels down: not looked at
  const auto files = scan_socket_dir(dir.path());
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, dir.path() + "/10.sock");
  EXPECT_EQ(files[1].path, dir.path() + "/api/20.sock");
  EXPECT_EQ(files[2].path, dir.path() + "/worker/30.sock");
  EXPECT_EQ(resolve_targets({TargetMode::kAll, 0, "", dir.path()}).size(), 3u);
  const pid_t self = getpid();
  make_dead_socket(dir.path() + "/api/" + std::to_string(self) + ".sock");
  const auto targets = resolve_targets({TargetMode::kPid, self, "", dir.path()});
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].socket, dir.path() + "/api/" + std::to_string(self) + ".sock");
}

// Any socket in a directory that group or others may write could be an impostor's: discovery
// refuses such a directory, whichever way the target is named in it (an explicit --socket path
// is the operator's own choice and is not judged).
TEST(Scan, RefusesADirectoryOthersMayWrite) {
  for (const mode_t mode : {0770, 0702, 01777}) {
    SCOPED_TRACE(mode);
    rsrtest::TempDir dir;
    make_dead_socket(dir.path() + "/77.sock");
    ASSERT_EQ(chmod(dir.path().c_str(), mode), 0);
    for (const TargetMode m : {TargetMode::kAll, TargetMode::kAuto, TargetMode::kPid}) {
      try {
        resolve_targets({m, 77, "", dir.path()});
        ADD_FAILURE() << "a directory of mode " << std::oct << mode << " was trusted";
      } catch (const CtlError& e) {
        EXPECT_EQ(e.code(), kExitUsage);
        EXPECT_THAT(e.what(), HasSubstr("writable by group or others"));
        EXPECT_THAT(e.what(), HasSubstr(dir.path()));
      }
    }
    EXPECT_EQ(resolve_targets({TargetMode::kSocket, 0, dir.path() + "/77.sock", dir.path()}).size(), 1u);
  }
  // Group read and search (the shared set-up of README, Security) is fine.
  rsrtest::TempDir shared;
  ASSERT_EQ(chmod(shared.path().c_str(), 02750), 0);
  EXPECT_TRUE(scan_socket_dir(shared.path()).empty());
}

TEST(Cleanup, RemovesOnlyOurSocketsNamedByPid) {
  rsrtest::TempDir dir;
  const std::string stale = dir.path() + "/123.sock";
  make_dead_socket(stale);
  const std::string regular = dir.path() + "/124.sock";
  std::ofstream(regular) << "not a socket";

  EXPECT_EQ(remove_stale_socket(dir.path(), {123, stale}), "");
  EXPECT_FALSE(exists(stale));
  EXPECT_EQ(remove_stale_socket(dir.path(), {124, regular}), "not a socket");
  EXPECT_TRUE(exists(regular));
  // A path outside the directory, or a name that does not match the pid, is left alone.
  EXPECT_THAT(remove_stale_socket("/elsewhere", {124, regular}), HasSubstr("not in the socket"));
  EXPECT_EQ(remove_stale_socket(dir.path(), {125, regular}), "not named <pid>.sock");
  // Already gone is fine.
  EXPECT_EQ(remove_stale_socket(dir.path(), {123, stale}), "");
}

// A service's directory one level down (systemd's RuntimeDirectory=rsrmem/%N) is cleaned as the
// top one is; deeper, or in a directory others may write, nothing is touched.
TEST(Cleanup, RemovesStaleSocketsInAServicesDirectory) {
  rsrtest::TempDir dir;
  ASSERT_EQ(mkdir((dir.path() + "/svc").c_str(), 0700), 0);
  const std::string stale = dir.path() + "/svc/123.sock";
  make_dead_socket(stale);
  ASSERT_EQ(scan_socket_dir(dir.path()).size(), 1u);
  EXPECT_EQ(remove_stale_socket(dir.path(), {123, stale}), "");
  EXPECT_FALSE(exists(stale));

  ASSERT_EQ(mkdir((dir.path() + "/svc/deeper").c_str(), 0700), 0);
  const std::string deeper = dir.path() + "/svc/deeper/124.sock";
  make_dead_socket(deeper);
  EXPECT_THAT(remove_stale_socket(dir.path(), {124, deeper}), HasSubstr("not in the socket directory"));
  EXPECT_TRUE(exists(deeper));

  ASSERT_EQ(mkdir((dir.path() + "/open").c_str(), 0700), 0);
  ASSERT_EQ(chmod((dir.path() + "/open").c_str(), 0777), 0);
  const std::string open = dir.path() + "/open/125.sock";
  make_dead_socket(open);
  EXPECT_THAT(remove_stale_socket(dir.path(), {125, open}), HasSubstr("not in the socket directory"));
  EXPECT_TRUE(exists(open));
}

TEST(Resolve, PidNamesItsSocket) {
  rsrtest::TempDir dir;
  const pid_t self = getpid();
  const std::string path = dir.path() + "/" + std::to_string(self) + ".sock";
  make_dead_socket(path);
  const auto targets = resolve_targets({TargetMode::kPid, self, "", dir.path()});
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].socket, path);
  EXPECT_FALSE(targets[0].cleanable);
}

TEST(Resolve, MissingPidIsNotFoundWithTheSocketPath) {
  rsrtest::TempDir dir;
  try {
    resolve_targets({TargetMode::kPid, 123, "", dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("no monitored process with pid 123 (no socket " + dir.path() +
                                    "/123.sock)"));
  }
}

TEST(Resolve, GonePidIsNotFound) {
  rsrtest::TempDir dir;
  make_dead_socket(dir.path() + "/" + std::to_string(kDeadPid) + ".sock");
  try {
    resolve_targets({TargetMode::kPid, kDeadPid, "", dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("is gone (stale socket"));
  }
}

TEST(Resolve, SocketMustExistAndBeASocket) {
  rsrtest::TempDir dir;
  const std::string file = dir.path() + "/plain";
  std::ofstream(file) << "";
  try {
    resolve_targets({TargetMode::kSocket, 0, file, dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("is not a socket"));
  }
  try {
    resolve_targets({TargetMode::kSocket, 0, dir.path() + "/none", dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
  }
  const std::string named = dir.path() + "/77.sock";
  make_dead_socket(named);
  EXPECT_EQ(resolve_targets({TargetMode::kSocket, 0, named, dir.path()})[0].pid, 77);
}

TEST(Resolve, AutoPicksTheOnlyLiveProcess) {
  rsrtest::TempDir dir;
  make_dead_socket(dir.path() + "/" + std::to_string(kDeadPid) + ".sock");
  try {
    resolve_targets({TargetMode::kAuto, 0, "", dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitNotFound);
    EXPECT_THAT(e.what(), HasSubstr("no monitored process found in " + dir.path()));
  }
  const std::string mine = dir.path() + "/" + std::to_string(getpid()) + ".sock";
  make_dead_socket(mine);
  const auto targets = resolve_targets({TargetMode::kAuto, 0, "", dir.path()});
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].socket, mine);
}

TEST(Resolve, AutoWithSeveralListsTheCandidates) {
  rsrtest::TempDir dir;
  const std::string a = dir.path() + "/" + std::to_string(getpid()) + ".sock";
  const std::string b = dir.path() + "/" + std::to_string(getppid()) + ".sock";
  auto answer = [](const std::string&) { return rsrtest::reply(R"({"ok":true})"); };
  rsrtest::FakeServer sa(a, answer), sb(b, answer);
  try {
    resolve_targets({TargetMode::kAuto, 0, "", dir.path()});
    FAIL();
  } catch (const CtlError& e) {
    EXPECT_EQ(e.code(), kExitUsage);
    EXPECT_THAT(e.what(), HasSubstr("2 monitored processes: "));
    EXPECT_THAT(e.what(), HasSubstr(std::to_string(getpid()) + " ("));
    EXPECT_THAT(e.what(), HasSubstr("choose one with --pid PID, or use --all"));
  }
}

TEST(Resolve, AutoIgnoresAStaleSocketOfALivePid) {
  rsrtest::TempDir dir;
  const std::string live = dir.path() + "/" + std::to_string(getpid()) + ".sock";
  rsrtest::FakeServer server(live,
                             [](const std::string&) { return rsrtest::reply(R"({"ok":true})"); });
  make_dead_socket(dir.path() + "/" + std::to_string(getppid()) + ".sock");  // pid reused
  const auto targets = resolve_targets({TargetMode::kAuto, 0, "", dir.path()});
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].socket, live);
}

TEST(Resolve, AllReturnsEverySocketIncludingDeadOnes) {
  rsrtest::TempDir dir;
  make_dead_socket(dir.path() + "/" + std::to_string(kDeadPid) + ".sock");
  make_dead_socket(dir.path() + "/" + std::to_string(getpid()) + ".sock");
  const auto targets = resolve_targets({TargetMode::kAll, 0, "", dir.path()});
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_TRUE(targets[0].cleanable);
  EXPECT_TRUE(resolve_targets({TargetMode::kAll, 0, "", dir.path() + "/none"}).empty());
}

TEST(PidAlive, SelfAndNonexistent) {
  EXPECT_TRUE(pid_alive(getpid()));
  EXPECT_TRUE(pid_alive(1));  // EPERM for non-root still means alive
  EXPECT_FALSE(pid_alive(kDeadPid));
  EXPECT_FALSE(pid_alive(0));
}

}  // namespace
