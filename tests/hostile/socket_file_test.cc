// The socket's file and directory under other hands: removed, replaced, the directory removed;
// stale sockets of children that ended with _exit(); a socket directory too long for a socket
// path; a process out of descriptors when a peer connects.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "harness.h"
#include "hostile.h"

namespace {

using namespace hostile;

Spawn daemon_in(const std::string& dir) {
  Spawn s;
  s.argv = {hostile::program("daemon")};
  s.socket_dir = dir;
  return s;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Waits until `pred` holds, checking every 50 ms; false after timeout_ms.
template <class Pred>
bool eventually(Pred pred, int timeout_ms) {
  const auto deadline = hostile::Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (hostile::Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// A socket file nobody listens on (bound, then closed), as a crashed process leaves it.
void make_dead_socket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path << ": " << strerror(errno);
  close(fd);
}

// A pid that existed a moment ago and is surely gone now.
pid_t dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int st;
  waitpid(pid, &st, 0);
  return pid;
}

TEST(SocketFile, RemovedIsRecreated) {
  TempDir dir;
  Process p = hostile::start_ready(daemon_in(dir.path()), dir.path());
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  ASSERT_EQ(unlink(sock.c_str()), 0);
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), hostile::kSocketMs, &hello)) << hello.describe();
  struct stat st;
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  hostile::quit(p);
  EXPECT_FALSE(exists(sock)) << "not removed at exit";
}

TEST(SocketFile, DirectoryRemovedIsRecreated) {
  TempDir parent;
  const std::string dir = parent / "sockets";
  Process p = hostile::start_ready(daemon_in(dir), dir);
  ASSERT_EQ(rt::run_text("rm -rf '" + dir + "' && echo gone"), "gone\n");
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir, p.pid(), hostile::kSocketMs, &hello)) << hello.describe();
  struct stat st;
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  hostile::quit(p);
}

// Someone put their own file where the socket was: it is theirs, and stays untouched (at exit
// too); once it is gone, the socket comes back.
TEST(SocketFile, ReplacedByAnotherFileIsLeftAlone) {
  TempDir dir;
  Process p = hostile::start_ready(daemon_in(dir.path()), dir.path());
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  ASSERT_EQ(unlink(sock.c_str()), 0);
  rt::write_file(sock, "not yours\n", 0600);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(rt::read_file(sock), "not yours\n") << "the library touched a file it did not create";
  ASSERT_EQ(unlink(sock.c_str()), 0);
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), hostile::kSocketMs, &hello)) << hello.describe();
  // Replaced again, then the program exits: the file survives the exit.
  ASSERT_EQ(unlink(sock.c_str()), 0);
  rt::write_file(sock, "mine\n", 0600);
  hostile::quit(p);
  EXPECT_EQ(rt::read_file(sock), "mine\n") << "removed at exit though it was not the library's";
}

// Pre-fork children that end with _exit() run no destructors: their sockets stay behind. The
// parent notices they are gone and removes them.
TEST(StaleSockets, OfChildrenThatCalledExitAreRemovedByTheParent) {
  TempDir dir;
  Process p = hostile::start_ready(daemon_in(dir.path()), dir.path());
  p.write("fork_exit 3\n");
  std::set<pid_t> children;
  for (;;) {
    const std::string line = hostile::await_line(p, "");
    ASSERT_FALSE(line.empty()) << p.describe();
    int pid = 0;
    if (sscanf(line.c_str(), "child %d", &pid) == 1) children.insert(pid);
    if (hostile::starts_with(line, "reaped ")) {
      ASSERT_EQ(line, "reaped 3");
      break;
    }
  }
  ASSERT_EQ(children.size(), 3u);
  for (pid_t c : children) EXPECT_TRUE(exists(rt::socket_path(dir.path(), c))) << "child " << c << " had no socket";
  EXPECT_TRUE(eventually(
      [&] {
        for (pid_t c : children)
          if (exists(rt::socket_path(dir.path(), c))) return false;
        return true;
      },
      15000))
      << "stale sockets of exited children remain: " << ::testing::PrintToString(rt::list_dir(dir.path()));
  EXPECT_TRUE(rt::query(rt::socket_path(dir.path(), p.pid()), R"({"cmd":"hello"})").served());
  hostile::quit(p);
}

// A monitored process starting in a directory removes the sockets of processes that are gone,
// and nothing else: not a live process's, not another user's, not a file that is no socket.
TEST(StaleSockets, AreSweptWhenAProcessStarts) {
  TempDir dir;
  const pid_t gone = dead_pid();
  const std::string stale = rt::socket_path(dir.path(), gone);
  make_dead_socket(stale);
  const std::string live = rt::socket_path(dir.path(), getpid());  // ours: alive
  make_dead_socket(live);
  const pid_t gone2 = dead_pid();
  const std::string not_socket = rt::socket_path(dir.path(), gone2);
  rt::write_file(not_socket, "a file\n", 0600);
  const std::string other_name = dir / "notes.sock";
  make_dead_socket(other_name);
  std::string others;
  if (geteuid() == 0) {
    const pid_t gone3 = dead_pid();
    others = rt::socket_path(dir.path(), gone3);
    make_dead_socket(others);
    ASSERT_EQ(lchown(others.c_str(), 65534, 65534), 0);
  }
  Process p = hostile::start_ready(daemon_in(dir.path()), dir.path());
  EXPECT_FALSE(exists(stale)) << "the socket of a process that is gone was left";
  EXPECT_TRUE(exists(live)) << "a live pid's socket was removed";
  EXPECT_EQ(rt::read_file(not_socket), "a file\n");
  EXPECT_TRUE(exists(other_name));
  if (!others.empty()) {
    EXPECT_TRUE(exists(others)) << "another user's socket was removed";
  }
  hostile::quit(p);
}

TEST(SocketDir, TooLongIsRejectedBeforeAnythingIsCreated) {
  TempDir parent;
  const std::string dir = parent / std::string(120, 'd');
  Process p(daemon_in(dir));
  ASSERT_TRUE(hostile::starts_with(hostile::await_line(p, "ready "), "ready ")) << p.describe();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(exists(dir)) << "the directory was created though no socket path fits in it";
  hostile::quit(p);
  EXPECT_NE(p.err().find("too long"), std::string::npos) << p.describe();
}

// The process has no descriptor left when a peer connects: accept() fails with EMFILE while the
// connection stays queued. The control thread must not spin on it, and must serve once
// descriptors are free again.
TEST(OutOfDescriptors, AcceptDoesNotSpinAndRecovers) {
  TempDir dir;
  Process p = hostile::start_ready(daemon_in(dir.path()), dir.path());
  const std::string sock = rt::socket_path(dir.path(), p.pid());
  const std::string hogged = command(p, "hog", "hogged ");
  ASSERT_TRUE(hostile::starts_with(hogged, "hogged ")) << p.describe();
  // A peer waits in the queue the whole time.
  std::thread waiting([&] { rt::query(sock, R"({"cmd":"hello"})", 4000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double cpu = hostile::control_thread_cpu(p.pid(), 3000);
  waiting.join();
  figure("emfile.control_thread_cpu", std::to_string(cpu * 100) + "%");
  EXPECT_GE(cpu, 0);
  EXPECT_LT(cpu, 0.10) << "the control thread spins while accept() fails";
  ASSERT_EQ(command(p, "free", "freed"), "freed");
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), hostile::kSocketMs, &hello)) << hello.describe();
  hostile::quit(p);
}

}  // namespace
