// The socket under pressure from the process around it: a process out of descriptors when a
// peer connects.
#include <unistd.h>

#include <gtest/gtest.h>

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
