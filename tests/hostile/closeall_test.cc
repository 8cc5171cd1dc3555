// Daemons that close every descriptor >= 3 (close_range, or a close() loop) and then open their
// own sockets and files, and programs that dup2() over every low number, the library's high
// ones included. The library must never act on a descriptor that is no longer its own: the
// program's TCP clients are all served by the program, its records all reach its file, the
// control thread stays idle, and the control socket answers again after it was lost.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "hostile.h"

namespace {

using namespace hostile;

constexpr double kMaxControlCpu = 0.10;  // of one CPU, while nobody talks to the socket

// Queries the socket every 20 ms from its own thread while a daemon rearranges its
// descriptors: a request in flight then is the moment a careless server writes into whatever
// the program opened under the number of its connection.
class Scraper {
 public:
  explicit Scraper(std::string sock) : sock_(std::move(sock)), thread_([this] { run(); }) {}
  ~Scraper() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    while (!stop_) {
      rt::query(sock_, R"({"cmd":"hello"})", 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::string sock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends commands to the daemon while a Scraper queries its socket; returns the answer to each
// (the first line starting with its prefix).
using Step = std::pair<std::string, std::string>;  // command, prefix of its answer
std::vector<std::string> scraped(Process& p, const TempDir& dir, const std::vector<Step>& steps) {
  Scraper scraper(rt::socket_path(dir.path(), p.pid()));
  std::vector<std::string> answers;
  for (const auto& [line, prefix] : steps) answers.push_back(command(p, line, prefix));
  return answers;
}

// One TCP client of the daemon: "ping i" -> "pong i <pid>". Returns what it got back.
std::string tcp_client(int port, int i) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return std::string("connect: ") + strerror(errno);
  }
  const std::string ping = "ping " + std::to_string(i) + "\n";
  (void)!send(fd, ping.data(), ping.size(), MSG_NOSIGNAL);
  std::string got;
  const auto deadline = hostile::Clock::now() + std::chrono::seconds(2);
  while (got.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - hostile::Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
      got += "<no answer within 2 s>";
      break;
    }
    char buf[256];
    const ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k <= 0) {
      got += "<closed>";
      break;
    }
    got.append(buf, static_cast<size_t>(k));
  }
  close(fd);
  return got;
}

// With the default sampling: stacks are captured while the daemon closes everything.
Spawn daemon_spawn(const TempDir& dir) {
  Spawn s;
  s.argv = {hostile::program("daemon")};
  s.socket_dir = dir.path();
  return s;
}

// The descriptor numbers of `pid` that are sockets.
std::vector<int> socket_fds(pid_t pid) {
  std::vector<int> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const std::string& name : rt::list_dir(dir)) {
    char link[256];
    const ssize_t n = readlink((dir + "/" + name).c_str(), link, sizeof link - 1);
    if (n > 0 && std::string(link, static_cast<size_t>(n)).rfind("socket:", 0) == 0) out.push_back(std::stoi(name));
  }
  return out;
}

// After the loss: the thread is idle and the socket answers again, through rsrmemctl too.
void expect_recovered(Process& p, const TempDir& dir, const std::string& variant) {
  const double cpu = hostile::control_thread_cpu(p.pid(), 3000);
  figure(variant + ".control_thread_cpu", std::to_string(cpu * 100) + "%");
  EXPECT_GE(cpu, 0) << "no rsrmem-ctl thread";
  EXPECT_LT(cpu, kMaxControlCpu) << "the control thread spins on a descriptor it lost";
  rt::Reply hello;
  EXPECT_TRUE(rt::wait_for_socket(dir.path(), p.pid(), hostile::kSocketMs, &hello))
      << "the control socket did not come back: " << hello.describe() << "\n" << p.describe();
  EXPECT_EQ(hello.json.value("pid", int64_t{-1}), p.pid());
  const std::string ctl = rt::ctl_path();
  if (!ctl.empty()) {
    Spawn c;
    c.preload = false;
    c.env["RSR_SOCKET_DIR"] = dir.path();
    c.argv = {ctl, "--pid", std::to_string(p.pid()), "status"};
    const rt::RunResult r = rt::run(c, 20000);
    EXPECT_EQ(rt::describe_status(r.status), "exit 0") << r.describe();
  }
}

class CloseAll : public ::testing::TestWithParam<const char*> {};

TEST_P(CloseAll, ThenServesTcpClients) {
  const std::string how = GetParam();
  TempDir dir;
  Process p = hostile::start_ready(daemon_spawn(dir), dir.path());
  ASSERT_TRUE(p.started());
  // The program's listener takes the number the library's socket has now (dup2), so whatever
  // polls that number next sees the program's clients.
  std::vector<int> before = socket_fds(p.pid());
  for (int i = 0; i < 100 && before.size() != 1; ++i) {  // the last hello's connection closing
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    before = socket_fds(p.pid());
  }
  ASSERT_EQ(before.size(), 1u) << "expected the library's listening socket alone";
  const int at = before[0];
  int served = 0, port = -1, fd = -1;
  std::string failures;
  {
    Scraper scraper(rt::socket_path(dir.path(), p.pid()));
    ASSERT_EQ(command(p, "closeall " + how, "closed"), "closed") << p.describe();
    const std::string line = command(p, "tcp 20 " + std::to_string(at), "port ");
    ASSERT_EQ(sscanf(line.c_str(), "port %d fd %d", &port, &fd), 2) << line << "\n" << p.describe();
    EXPECT_EQ(fd, at) << "the program's listener did not land on the library's old number";
    for (int i = 0; i < 20; ++i) {
      const std::string want = "pong " + std::to_string(i) + " " + std::to_string(p.pid()) + "\n";
      const std::string got = tcp_client(port, i);
      if (got == want) ++served;
      else failures += "client " + std::to_string(i) + ": " + got.substr(0, 80) + "\n";
    }
  }
  const std::string done = hostile::await_line(p, "tcp served ");
  figure("closeall_" + how + ".tcp_clients_served", std::to_string(served) + "/20");
  EXPECT_EQ(served, 20) << "the program's listener (fd " << fd << ") lost clients:\n" << failures;
  EXPECT_EQ(done, "tcp served 20") << p.describe();
  expect_recovered(p, dir, "closeall_" + how + "_tcp");
  hostile::quit(p);
}

TEST_P(CloseAll, ThenWritesItsFile) {
  const std::string how = GetParam();
  TempDir dir;
  TempDir data("rsrdata");
  Process p = hostile::start_ready(daemon_spawn(dir), dir.path());
  const auto answers = scraped(p, dir, {{"closeall " + how, "closed"}, {"file " + (data / "records") + " 4000", "file "}});
  figure("closeall_" + how + ".records", answers[1]);
  EXPECT_EQ(answers[0], "closed") << p.describe();
  EXPECT_EQ(answers[1], "file ok 4000") << p.describe();
  expect_recovered(p, dir, "closeall_" + how + "_file");
  hostile::quit(p);
}

INSTANTIATE_TEST_SUITE_P(Ways, CloseAll, ::testing::Values("range", "loop"),
                         [](const auto& info) { return std::string(info.param); });

// dup2() of the program's own file over every number from 3 to 1100: the library's descriptors
// (kept just below 1024) are replaced under it. Its records must all reach the file, the control
// thread must notice and let go, and the socket must come back somewhere free.
TEST(Dup2, OverEveryLowNumber) {
  TempDir dir;
  TempDir data("rsrdata");
  Process p = hostile::start_ready(daemon_spawn(dir), dir.path());
  const std::string result = scraped(p, dir, {{"dup2 " + (data / "records") + " 1100 4000", "dup2 "}})[0];
  figure("dup2.records", result);
  EXPECT_EQ(result, "dup2 ok 4000") << p.describe();
  expect_recovered(p, dir, "dup2");
  // Nothing of the library's ever went into the file while the copies were open.
  EXPECT_EQ(command(p, "file " + (data / "after") + " 10", "file "), "file ok 10");
  // And then the copies are closed again, the library's new socket with them: it comes back once
  // more.
  ASSERT_EQ(command(p, "closeall range", "closed"), "closed") << p.describe();
  expect_recovered(p, dir, "dup2_then_closeall");
  hostile::quit(p);
}

// With every allocation unwound (detailed tracking), a daemon that closes everything and writes
// its file, starting a short-lived thread now and then that allocates in a signal handler too,
// a stack the library's walker leaves to libunwind, which validates addresses through its pipe:
// libunwind's validation pipe (x86_64/Ginit.c, write_validate) must never be the file under its
// old numbers (it would read from it, fail, close it and open a new pipe in its place).
TEST(StackCapture, CloseAllThenWritesItsFile) {
  TempDir dir;
  TempDir data("rsrdata");
  Spawn s = daemon_spawn(dir);
  s.env["RSR_MEMORY_DETAILED_TRACKING"] = "true";
  Process p = hostile::start_ready(s, dir.path());
  ASSERT_EQ(command(p, "closeall range", "closed"), "closed") << p.describe();
  EXPECT_EQ(command(p, "file " + (data / "records") + " 4000 threads", "file "), "file ok 4000") << p.describe();
  bool loaded = false;  // at the control thread's next turn after the first handler's stack
  for (int i = 0; i < 60 && !(loaded = rt::maps_contain(p.pid(), "libunwind")); ++i) usleep(50 * 1000);
  EXPECT_TRUE(loaded) << "libunwind was never needed: the pipe went untested";
  hostile::quit(p);
}

}  // namespace
