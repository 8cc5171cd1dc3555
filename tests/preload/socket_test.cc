// Everything that crosses the control socket: one socket per process (pre-fork workers, exec'd
// children), exact live-heap figures, peer credentials, the master switch, malformed peers.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace {

using rt::Process;
using rt::Reply;
using rt::Spawn;
using rt::TempDir;

constexpr int kLineMs = 15000;
constexpr int kSocketMs = 10000;
constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

using rt::heap_field;
using rt::summary;

std::vector<std::string> sockets_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& n : rt::list_dir(dir))
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".sock") == 0) out.push_back(n);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-fork workers: each has its own socket answering for its own pid; the parent's still works.

TEST(Prefork, EveryWorkerHasItsOwnSocket) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("prefork"), "3"};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.started());

  pid_t parent = -1;
  std::set<pid_t> workers;
  while (parent < 0 || workers.size() < 3) {
    auto line = p.read_line(kLineMs);
    ASSERT_TRUE(line) << "workers did not come up (a lock held across fork?)\n" << p.describe();
    int i, pid;
    if (sscanf(line->c_str(), "worker %d %d", &i, &pid) == 2) workers.insert(pid);
    if (sscanf(line->c_str(), "parent %d", &pid) == 1) parent = pid;
  }
  ASSERT_EQ(parent, p.pid());

  std::vector<pid_t> all(workers.begin(), workers.end());
  all.push_back(parent);
  for (pid_t pid : all) {
    SCOPED_TRACE("pid " + std::to_string(pid));
    Reply hello;
    ASSERT_TRUE(rt::wait_for_socket(dir.path(), pid, kSocketMs, &hello)) << hello.describe();
    ASSERT_TRUE(hello.json.contains("pid")) << hello.describe();
    EXPECT_EQ(hello.json["pid"].get<int64_t>(), pid) << "the socket answers for another process";
    EXPECT_EQ(hello.json.value("protocol", -1), 1);
    const Reply sum = summary(dir.path(), pid);
    ASSERT_TRUE(sum.served()) << sum.describe();
    EXPECT_EQ(sum.json["pid"].get<int64_t>(), pid);
    // Each worker holds 256 blocks of about (i+1) KiB allocated after the fork.
    if (pid != parent) {
      EXPECT_GT(heap_field(sum, "live_bytes"), 256 * 1024) << sum.describe();
    }
  }
  struct stat st;
  ASSERT_EQ(stat(rt::socket_path(dir.path(), parent).c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "socket mode";

  p.close_stdin();
  const auto status = p.wait(kLineMs);
  ASSERT_TRUE(status) << "did not exit\n" << p.describe();
  EXPECT_EQ(rt::describe_status(*status), "exit 0") << p.describe();
  EXPECT_NE(p.out().find("parent done 0"), std::string::npos) << p.describe();
  // Every process exited normally: every socket file is gone.
  EXPECT_TRUE(sockets_in(dir.path()).empty()) << "left behind: " << ::testing::PrintToString(sockets_in(dir.path()));
}

// A fork can land while another thread is inside the library (sampling, unwinding, updating a
// table): the child must still be able to allocate. Whether a given fork hits such a window is
// chance, so this repeats the pre-fork start-up several times.
TEST(Prefork, ForkWhileThreadsAllocateNeverHangs) {
  static const char* const kDelaysUs[] = {"0", "500", "1000", "2000"};
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    TempDir dir;
    Spawn s;
    s.argv = {rt::program("prefork"), "4", kDelaysUs[round % 4]};
    s.socket_dir = dir.path();
    Process p(s);
    int workers = 0;
    while (workers < 4) {
      auto line = p.read_line(5000);
      ASSERT_TRUE(line) << "a forked worker hangs in its first allocations\n" << p.describe();
      int i, pid;
      if (sscanf(line->c_str(), "worker %d %d", &i, &pid) == 2) ++workers;
    }
    p.close_stdin();
    const auto st = p.wait(kLineMs);
    ASSERT_TRUE(st) << p.describe();
    ASSERT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
  }
}

// The same through the operator's command, when it is built.
TEST(Prefork, RsrmemctlReachesEachWorker) {
  const std::string ctl = rt::ctl_path();
  if (ctl.empty() || access(ctl.c_str(), X_OK) != 0) GTEST_SKIP() << "rsrmemctl not built";
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("prefork"), "3"};
  s.socket_dir = dir.path();
  Process p(s);
  std::set<pid_t> workers;
  while (workers.size() < 3) {
    auto line = p.read_line(kLineMs);
    ASSERT_TRUE(line) << p.describe();
    int i, pid;
    if (sscanf(line->c_str(), "worker %d %d", &i, &pid) == 2) workers.insert(pid);
  }
  for (pid_t pid : workers) {
    ASSERT_TRUE(rt::wait_for_socket(dir.path(), pid, kSocketMs));
    Spawn c;
    c.preload = false;
    c.env["RSR_SOCKET_DIR"] = dir.path();
    c.argv = {ctl, "--pid", std::to_string(pid), "--format", "json", "memory-summary"};
    const rt::RunResult r = rt::run(c, 20000);
    EXPECT_EQ(rt::describe_status(r.status), "exit 0") << r.describe();
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out;
    EXPECT_NE(r.out.find(std::to_string(pid)), std::string::npos) << r.out;
  }
}

// ---------------------------------------------------------------------------------------------
// Peer credentials. The socket directory (0700) already keeps other users out; to test the
// library's own SO_PEERCRED check, the test (root) opens a second way in: a hard link to the
// socket in a world-readable directory, with the socket made world-writable.

std::string verdict(const Reply& r) {
  if (r.served()) return "served";
  // A failed connect would mean the test did not open the way in: not a verdict on the library.
  if (r.status == Reply::Status::kConnectFailed) return "connect failed: " + r.error;
  if (r.status == Reply::Status::kClosed) return "refused";
  if (r.status == Reply::Status::kOk && r.kind == rsr::proto::Kind::kError) return "refused";
  if (r.status == Reply::Status::kBadJson && r.kind == rsr::proto::Kind::kError) return "refused";
  return "other: " + r.describe();
}

std::string hello_as(uid_t uid, gid_t gid, const std::string& path) {
  return rt::as_user(uid, gid, [&] {
    const Reply r = rt::query(path, R"({"cmd":"hello"})", 5000);
    return verdict(r) + " (" + r.describe().substr(0, 300) + ")";
  });
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

struct Opened {
  std::string link;  // world-reachable path to the socket
};

Opened open_up(const std::string& sock, const TempDir& pub) {
  chmod(pub.path().c_str(), 0755);
  const std::string link = pub / "s.sock";
  if (::link(sock.c_str(), link.c_str()) != 0) ADD_FAILURE() << "link: " << strerror(errno);
  chmod(sock.c_str(), 0666);
  return {link};
}

TEST(Permissions, OtherUidIsRefusedOwnerServed) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as other users";
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  struct stat st;
  ASSERT_EQ(stat(dir.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u) << "the library must not loosen its directory";
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "socket mode";

  TempDir pub("rsrpub");
  const Opened o = open_up(sock, pub);
  // Owner (root) is served through the link: the link itself works.
  EXPECT_EQ(verdict(rt::query(o.link, R"({"cmd":"hello"})")), "served");
  const std::string other = hello_as(kNobody, kNogroup, o.link);
  EXPECT_TRUE(starts_with(other, "refused")) << "uid 65534 against a root-owned process: " << other;
  // The service keeps answering its owner afterwards.
  EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello"})").served());
  p.close_stdin();
  EXPECT_TRUE(p.wait(kLineMs));
}

// The monitored program runs as an unprivileged user: that user and root are served, a third
// uid is refused unless RSR_ALLOWED_UIDS names it.
class PermissionsUnprivileged : public ::testing::TestWithParam<bool> {};

TEST_P(PermissionsUnprivileged, OwnerAndRootServedStrangerRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as other users";
  const bool allow_stranger = GetParam();
  const uid_t kStranger = 4242, kOther = 4343;
  // Copies of the program and the library where an unprivileged user can surely read them.
  TempDir bin("rsrbin");
  chmod(bin.path().c_str(), 0755);
  for (const char* f : {"idle"}) rt::write_file(bin / f, rt::read_file(rt::program(f)), 0755);
  rt::write_file(bin / "librsrmem.so", rt::read_file(rt::preload_lib()), 0755);
  rt::write_file(bin / "librsrmem-heap.so", rt::read_file(rt::preload_heap_lib()), 0755);
  TempDir dir;
  ASSERT_EQ(chown(dir.path().c_str(), kNobody, kNogroup), 0);

  Spawn s;
  s.argv = {bin / "idle"};
  s.preload_path = bin / "librsrmem.so";
  s.socket_dir = dir.path();
  s.uid = kNobody;
  s.gid = kNogroup;
  if (allow_stranger) s.env["RSR_ALLOWED_UIDS"] = std::to_string(kStranger);
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &hello)) << hello.describe();
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);

  // The owner, through the library's own directory.
  const std::string owner = hello_as(kNobody, kNogroup, sock);
  EXPECT_TRUE(starts_with(owner, "served")) << owner;
  // Root is always allowed.
  EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello"})").served());

  TempDir pub("rsrpub");
  const Opened o = open_up(sock, pub);
  const std::string stranger = hello_as(kStranger, kStranger, o.link);
  const std::string other = hello_as(kOther, kOther, o.link);
  if (allow_stranger) {
    EXPECT_TRUE(starts_with(stranger, "served")) << "RSR_ALLOWED_UIDS=4242, uid 4242: " << stranger;
  } else {
    EXPECT_TRUE(starts_with(stranger, "refused")) << "uid 4242: " << stranger;
  }
  EXPECT_TRUE(starts_with(other, "refused")) << "uid 4343: " << other;
  EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello"})").served()) << "the service stopped answering";
  p.close_stdin();
  const auto code = p.wait(kLineMs);
  ASSERT_TRUE(code) << p.describe();
  EXPECT_EQ(rt::describe_status(*code), "exit 0") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(AllowedUids, PermissionsUnprivileged, ::testing::Bool(),
                         [](const auto& info) { return std::string(info.param ? "stranger_allowed" : "default"); });

// ---------------------------------------------------------------------------------------------
// exec: children keep the preload when RSR_FOLLOW_CHILDREN=true, lose it when false.

class FollowChildren : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

TEST_P(FollowChildren, ExecedChild) {
  const auto [how, follow] = GetParam();
  TempDir dir;
  Spawn s;
  const std::string idle = rt::program("idle");
  s.argv = {rt::program("spawner"), how, idle};
  s.socket_dir = dir.path();
  s.env["RSR_FOLLOW_CHILDREN"] = follow ? "true" : "false";
  Process p(s);
  ASSERT_TRUE(p.started());
  auto line = p.read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, kLineMs);
  ASSERT_TRUE(line) << p.describe();
  const pid_t child = std::stoi(line->substr(6));
  ASSERT_NE(child, p.pid());

  // The spawner itself is monitored either way.
  Reply parent_hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs, &parent_hello)) << parent_hello.describe();

  if (follow) {
    Reply hello;
    ASSERT_TRUE(rt::wait_for_socket(dir.path(), child, kSocketMs, &hello)) << hello.describe();
    EXPECT_EQ(hello.json.value("pid", int64_t{-1}), child);
    // The exec'd image answers, not a leftover of the forked parent image.
    const std::string program = hello.json.value("program", std::string());
    EXPECT_TRUE(program.size() >= 5 && program.compare(program.size() - 5, 5, "/idle") == 0)
        << "program: " << program;
    EXPECT_TRUE(rt::maps_contain(child, "librsrmem"));
  } else {
    EXPECT_FALSE(rt::maps_contain(child, "librsrmem")) << "the exec'd child still loads the library";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const Reply r = rt::query(rt::socket_path(dir.path(), child), R"({"cmd":"hello"})", 2000);
    EXPECT_FALSE(r.served()) << "the exec'd child answers on a socket: " << r.describe();
    const std::string env = rt::read_file("/proc/" + std::to_string(child) + "/environ");
    EXPECT_EQ(env.find("librsrmem"), std::string::npos) << "LD_PRELOAD still names the library in the child";
  }
  p.close_stdin();
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st) << p.describe();
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Ways, FollowChildren,
                         ::testing::Combine(::testing::Values("fork-exec", "posix_spawn", "system"), ::testing::Bool()),
                         [](const auto& info) {
                           std::string how = std::get<0>(info.param);
                           for (char& c : how)
                             if (c == '-') c = '_';
                           return how + (std::get<1>(info.param) ? "_follow" : "_nofollow");
                         });

// LD_PRELOAD may name other libraries: RSR_FOLLOW_CHILDREN=false removes only librsrmem.
TEST(FollowChildren, OtherPreloadsSurvive) {
  TempDir dir;
  Spawn s;
  const std::string payload = rt::program("libpayload.so");
  s.argv = {rt::program("spawner"), "fork-exec", rt::program("idle")};
  s.preload_path = payload + ":" + rt::preload_lib();
  s.socket_dir = dir.path();
  s.env["RSR_FOLLOW_CHILDREN"] = "false";
  Process p(s);
  auto line = p.read_until([](const std::string& l) { return l.rfind("ready ", 0) == 0; }, kLineMs);
  ASSERT_TRUE(line) << p.describe();
  const pid_t child = std::stoi(line->substr(6));
  EXPECT_TRUE(rt::maps_contain(child, "libpayload.so")) << "another preloaded library was dropped too";
  EXPECT_FALSE(rt::maps_contain(child, "librsrmem"));
  p.close_stdin();
  EXPECT_TRUE(p.wait(kLineMs));
}

// ---------------------------------------------------------------------------------------------
// Where the socket goes, and directories the library must refuse.

TEST(SocketDir, DefaultIsUnderXdgRuntimeDir) {
  TempDir runtime("rsrxdg");
  Spawn s;
  s.argv = {rt::program("idle")};
  s.env["XDG_RUNTIME_DIR"] = runtime.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  const std::string dir = runtime / "rsrmem";
  Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir, p.pid(), kSocketMs, &hello)) << hello.describe();
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  p.close_stdin();
  ASSERT_TRUE(p.wait(kLineMs));
  EXPECT_TRUE(sockets_in(dir).empty()) << "socket not removed at exit";
}

class UnsafeSocketDir : public ::testing::TestWithParam<const char*> {};

TEST_P(UnsafeSocketDir, IsRefusedAndTheProgramRunsOn) {
  const std::string kind = GetParam();
  TempDir dir;
  if (kind == "world-writable") chmod(dir.path().c_str(), 0777);
  if (kind == "group-writable") chmod(dir.path().c_str(), 0770);
  if (kind == "other-owner") {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
    ASSERT_EQ(chown(dir.path().c_str(), 65534, 65534), 0);
  }
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(sockets_in(dir.path()).empty()) << "a socket was created in a " << kind << " directory";
  EXPECT_FALSE(rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"hello"})", 1000).served());
  p.close_stdin();
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st);
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Kinds, UnsafeSocketDir, ::testing::Values("world-writable", "group-writable", "other-owner"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// The mechanism every test relies on: LD_PRELOAD reaches the program, and only when asked.
TEST(Harness, PreloadIsAppliedOnlyWhenAsked) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process with(s);
  ASSERT_TRUE(with.read_line(kLineMs)) << with.describe();
  EXPECT_TRUE(rt::maps_contain(with.pid(), "librsrmem"));
  s.preload = false;
  Process without(s);
  ASSERT_TRUE(without.read_line(kLineMs)) << without.describe();
  EXPECT_FALSE(rt::maps_contain(without.pid(), "librsrmem"));
}

// ---------------------------------------------------------------------------------------------
// Master switch.

TEST(MonitoringDisabled, NoSocketIsCreated) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  s.env["RSR_MEMORY_MONITORING_ENABLED"] = "false";
  Process p(s);
  auto line = p.read_line(kLineMs);
  ASSERT_TRUE(line && line->rfind("ready ", 0) == 0) << p.describe();
  EXPECT_TRUE(rt::maps_contain(p.pid(), "librsrmem")) << "the library should be loaded (and passive)";
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(rt::list_dir(dir.path()).empty()) << ::testing::PrintToString(rt::list_dir(dir.path()));
  p.close_stdin();
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st);
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
  EXPECT_EQ(p.err(), "") << "the library must stay silent when disabled";
}

TEST(MonitoringEnabled, SocketAppearsPromptly) {
  // The counterpart of the test above, so that it cannot pass merely because sockets are slow.
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), 1500, &hello)) << hello.describe();
}

// ---------------------------------------------------------------------------------------------
// Malformed peers get an error frame or a closed connection; the service keeps answering.

Reply raw_exchange(const std::string& path, const std::string& bytes, int timeout_ms, bool half_close = true) {
  // Like rt::query, but sends arbitrary bytes.
  Reply r;
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    r.error = strerror(errno);
    close(fd);
    return r;
  }
  if (!bytes.empty()) (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (half_close) shutdown(fd, SHUT_WR);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[4096];
  for (;;) {
    const ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k > 0) {
      got.append(buf, static_cast<size_t>(k));
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      r.status = Reply::Status::kTimeout;
      r.error = "no answer and no close within " + std::to_string(timeout_ms) + " ms";
      close(fd);
      return r;
    }
    break;  // EOF or reset
  }
  close(fd);
  if (got.empty()) {
    r.status = Reply::Status::kClosed;
    return r;
  }
  rsr::proto::FrameHeader h;
  if (got.size() < rsr::proto::kHeaderBytes ||
      rsr::proto::decode_header(reinterpret_cast<const uint8_t*>(got.data()), got.size(), rsr::proto::kMaxResponseBytes,
                                &h) != rsr::proto::DecodeStatus::kOk ||
      got.size() != rsr::proto::kHeaderBytes + h.length) {
    r.status = Reply::Status::kBadFrame;
    r.payload = got.substr(0, 200);
    return r;
  }
  r.kind = h.kind;
  r.payload = got.substr(rsr::proto::kHeaderBytes);
  try {
    r.json = nlohmann::json::parse(r.payload);
    r.status = Reply::Status::kOk;
  } catch (...) {
    r.status = Reply::Status::kBadJson;
  }
  return r;
}

std::string frame(rsr::proto::Kind kind, const std::string& payload, int64_t length = -1) {
  std::string f(rsr::proto::kHeaderBytes, '\0');
  rsr::proto::encode_header(kind, length < 0 ? static_cast<uint32_t>(payload.size()) : static_cast<uint32_t>(length),
                            reinterpret_cast<uint8_t*>(f.data()));
  return f + payload;
}

TEST(MalformedPeers, GetAnErrorOrAClosedConnection) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs));
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  using rsr::proto::Kind;
  struct Case {
    const char* name;
    std::string bytes;
    bool must_be_error_frame;  // a well-framed request the server can answer with kind 3
  };
  std::string bad_version = frame(Kind::kRequest, R"({"cmd":"hello"})");
  bad_version[4] = 9;
  const Case cases[] = {
      {"nothing", "", false},
      {"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
      {"short header", std::string("RSRM\x01\x00", 6), false},
      {"bad version", bad_version, false},
      {"response kind", frame(Kind::kResponse, R"({"cmd":"hello"})"), false},
      {"oversized", frame(Kind::kRequest, "", 64 * 1024 + 1), false},
      {"truncated payload", frame(Kind::kRequest, R"({"cmd":"hel)", 100), false},
      {"invalid json", frame(Kind::kRequest, R"({"cmd":"hello",})"), true},
      {"not an object", frame(Kind::kRequest, R"(["hello"])"), true},
      {"no cmd", frame(Kind::kRequest, R"({"top":5})"), true},
      {"unknown cmd", frame(Kind::kRequest, R"({"cmd":"format_disk"})"), true},
      {"cmd not a string", frame(Kind::kRequest, R"({"cmd":42})"), true},
      {"bad top", frame(Kind::kRequest, R"({"cmd":"summary","top":"many"})"), true},
      {"deep json", frame(Kind::kRequest, std::string(5000, '[') + std::string(5000, ']')), true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Reply r = raw_exchange(sock, c.bytes, 4000);
    ASSERT_NE(r.status, Reply::Status::kTimeout) << "the server neither answered nor closed: " << r.describe();
    EXPECT_FALSE(r.served()) << r.describe();
    if (r.status == Reply::Status::kOk) {
      EXPECT_EQ(r.kind, Kind::kError) << r.describe();
      EXPECT_EQ(r.json.value("ok", true), false) << r.describe();
      EXPECT_FALSE(r.json.value("error", std::string()).empty()) << "an error frame must say what is wrong";
    } else if (c.must_be_error_frame) {
      ADD_FAILURE() << "expected an error frame (kind 3) for a well-framed bad request, got " << r.describe();
    } else {
      EXPECT_EQ(r.status, Reply::Status::kClosed) << r.describe();
    }
    EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello"})").served()) << "the server stopped answering";
  }
  // Unknown fields are ignored.
  EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello","future_field":[1,{"x":null}]})").served());
  for (const char* cmd : {"hello", "status", "health", "summary", "update_metrics"}) {
    const Reply r = rt::query(sock, std::string(R"({"cmd":")") + cmd + "\"}");
    EXPECT_TRUE(r.served()) << cmd << ": " << r.describe();
    EXPECT_EQ(r.json.value("ok", false), true) << cmd;
    EXPECT_EQ(r.json.value("pid", int64_t{-1}), p.pid()) << cmd;
  }
  p.close_stdin();
  const auto st = p.wait(kLineMs);
  ASSERT_TRUE(st);
  EXPECT_EQ(rt::describe_status(*st), "exit 0") << p.describe();
}

TEST(MalformedPeers, SlowPeerIsCutOffAndDoesNotBlockOthers) {
  TempDir dir;
  Spawn s;
  s.argv = {rt::program("idle")};
  s.socket_dir = dir.path();
  Process p(s);
  ASSERT_TRUE(p.read_line(kLineMs)) << p.describe();
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), kSocketMs));
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  // A peer that connects and sends half a header, then nothing.
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(send(fd, "RSRM", 4, MSG_NOSIGNAL), 4);
  // Others are still served while it dawdles (allowing for one 2 s read timeout).
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(rt::query(sock, R"({"cmd":"hello"})", 5000).served());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(3000));
  // And the slow peer is eventually cut off.
  timeval tv{6, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  ssize_t k;
  while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  EXPECT_FALSE(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "slow peer still connected after 6 s";
  close(fd);
}

}  // namespace
