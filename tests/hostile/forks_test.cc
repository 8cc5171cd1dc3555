// A forked child gets a control socket of its own only once it has lived a little: children that
// exec or exit at once (a fork storm, a shell's pipeline) never make one, so they cost the
// parent next to nothing; a child that lives on is found and answers like any process.
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <string>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

// Names of files created in `dir` while `fn` ran.
template <class Fn>
std::vector<std::string> created_during(const std::string& dir, Fn fn) {
  const int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  EXPECT_GE(in, 0);
  EXPECT_GE(inotify_add_watch(in, dir.c_str(), IN_CREATE), 0);
  fn();
  std::vector<std::string> names;
  alignas(inotify_event) char buf[65536];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;) {
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      if (e->len) names.emplace_back(e->name);
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  close(in);
  return names;
}

TEST(Forks, ChildrenThatExitAtOnceMakeNoSocket) {
  TempDir dir;
  Spawn s;
  s.argv = {hostile::program("forker"), "30", "0"};
  s.socket_dir = dir.path();
  pid_t parent = -1;
  const auto created = created_during(dir.path(), [&] {
    Process p(s);
    ASSERT_TRUE(p.started());
    parent = p.pid();
    ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "done"; }, hostile::kLineMs)) << p.describe();
    ASSERT_TRUE(p.wait(hostile::kLineMs));
  });
  for (const std::string& name : created)
    EXPECT_EQ(name, std::to_string(parent) + ".sock") << "a child that exited at once made a socket";
}

TEST(Forks, AChildThatLivesOnAnswers) {
  TempDir dir;
  Spawn s;
  s.argv = {hostile::program("forker"), "1", "3000"};
  s.socket_dir = dir.path();
  Process p(s);
  const std::string line = hostile::await_line(p, "child ");
  ASSERT_FALSE(line.empty()) << p.describe();
  const pid_t child = std::stoi(line.substr(6));
  rt::Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir.path(), child, hostile::kSocketMs, &hello)) << hello.describe();
  EXPECT_EQ(hello.json.value("pid", int64_t{-1}), child);
  ASSERT_TRUE(p.read_until([](const std::string& l) { return l == "done"; }, hostile::kLineMs)) << p.describe();
}

}  // namespace
