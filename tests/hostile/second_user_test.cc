// A second user on the control socket, the way an exporter (`rsrmemctl serve --all` as its own
// user) is set up: the service runs as one user, the exporter as another named in
// RSR_ALLOWED_UIDS and a member of the socket directory's group. Users and the group are
// created here (useradd) and removed after; the test needs root and says so when skipped.
//
// The documented set-up (README, Security):
//   socket directory  owner: the service user; group: the exporters' group; mode 2750 (setgid,
//                     so sockets take its group; never group- or other-writable)
//   socket            0660, the directory's group
//   the check         SO_PEERCRED: the owner, root and RSR_ALLOWED_UIDS; an allowed uid may
//                     only query (no profiling, no update_metrics)
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "hostile.h"

namespace {

using rt::Process;
using rt::Spawn;
using rt::TempDir;

struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Users and groups made for one test, removed by the destructor.
class Accounts {
 public:
  ~Accounts() {
    for (const std::string& u : users_) rt::run_text("userdel " + u + " 2>&1; groupdel " + u + " 2>/dev/null");
    for (const std::string& g : groups_) rt::run_text("groupdel " + g + " 2>&1");
  }
  // A group; its gid, or -1 (and a test failure) when groupadd failed.
  gid_t group(const std::string& name) {
    rt::run_text("groupdel " + name + " 2>/dev/null");  // a leftover of an interrupted run
    const std::string out = rt::run_text("groupadd " + name + " 2>&1 && echo created");
    groups_.push_back(name);
    const struct group* g = getgrnam(name.c_str());
    EXPECT_TRUE(g) << "groupadd " << name << ": " << out;
    return g ? g->gr_gid : static_cast<gid_t>(-1);
  }
  // A user with its own primary group, a member of `extra` when not empty.
  Account user(const std::string& name, const std::string& extra = "") {
    rt::run_text("userdel " + name + " 2>/dev/null; groupdel " + name + " 2>/dev/null");
    const std::string out = rt::run_text("useradd -M -U -s /usr/sbin/nologin " +
                                         (extra.empty() ? "" : "-G " + extra + " ") + name + " 2>&1 && echo created");
    users_.push_back(name);
    const struct passwd* pw = getpwnam(name.c_str());
    EXPECT_TRUE(pw) << "useradd " << name << ": " << out;
    return pw ? Account{name, pw->pw_uid, pw->pw_gid} : Account{name, 0, 0};
  }

 private:
  std::vector<std::string> users_, groups_;
};

struct CtlRun {
  int code = -1;
  std::string out, err;
};

class SecondUser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: it creates users with useradd and acts as them";
    if (access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not installed";
    if (rt::ctl_path().empty()) GTEST_SKIP() << "rsrmemctl is not built";
    const std::string tag = std::to_string(getpid());
    mon_gid_ = accounts_.group("rsrmon" + tag);
    svc_ = accounts_.user("rsrsvc" + tag);
    exporter_ = accounts_.user("rsrexp" + tag, "rsrmon" + tag);
    stranger_ = accounts_.user("rsrstr" + tag, "rsrmon" + tag);
    ASSERT_NE(svc_.uid, 0u);
    ASSERT_NE(exporter_.uid, 0u);
    ASSERT_NE(stranger_.uid, 0u);
    // Copies of the program, the library and rsrmemctl where every user can read them.
    chmod(bin_.path().c_str(), 0755);
    for (const auto& [from, to] : {std::pair{rt::program("idle"), std::string("idle")},
                                   std::pair{rt::preload_lib(), std::string("librsrmem.so")},
                                   std::pair{rt::preload_heap_lib(), std::string("librsrmem-heap.so")},
                                   std::pair{rt::ctl_path(), std::string("rsrmemctl")}})
      rt::write_file(bin_ / to, rt::read_file(from), 0755);
    // The shared socket directory, as an administrator creates it.
    chmod(root_.path().c_str(), 0755);
    dir_ = root_ / "rsrmem";
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
    ASSERT_EQ(chown(dir_.c_str(), svc_.uid, mon_gid_), 0);
    ASSERT_EQ(chmod(dir_.c_str(), 02750), 0);
  }

  Process service(bool allow_exporter) {
    Spawn s;
    s.argv = {bin_ / "idle"};
    s.preload_path = bin_ / "librsrmem.so";
    s.socket_dir = dir_;
    s.uid = svc_.uid;
    s.gid = svc_.gid;
    if (allow_exporter) s.env["RSR_ALLOWED_UIDS"] = std::to_string(exporter_.uid);
    Process p(s);
    EXPECT_TRUE(p.read_line(hostile::kLineMs)) << p.describe();
    return p;
  }

  // rsrmemctl as `who`, with the groups given.
  CtlRun ctl(const Account& who, std::vector<gid_t> groups, std::vector<std::string> args) {
    Spawn c;
    c.preload = false;
    c.env["RSR_SOCKET_DIR"] = dir_;
    c.uid = who.uid;
    c.gid = who.gid;
    c.groups = std::move(groups);
    c.cwd = "/";
    c.argv = {bin_ / "rsrmemctl"};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    const rt::RunResult r = rt::run(c, 20000);
    CtlRun out;
    out.code = r.started && !r.timed_out && WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
    out.out = r.out;
    out.err = r.err;
    return out;
  }

  Accounts accounts_;
  TempDir bin_{"rsrbin"};
  TempDir root_{"rsrshared"};
  std::string dir_;
  gid_t mon_gid_ = 0;
  Account svc_, exporter_, stranger_;
};

TEST_F(SecondUser, AllowedExporterQueriesOthersAreRefused) {
  Process p = service(/*allow_exporter=*/true);
  rt::Reply hello;
  ASSERT_TRUE(rt::wait_for_socket(dir_, p.pid(), hostile::kSocketMs, &hello)) << hello.describe() << p.describe();
  const std::string pid = std::to_string(p.pid());
  const std::string sock = rt::socket_path(dir_, p.pid());

  // Modes as documented: the directory untouched, the socket group-connectable.
  struct stat st;
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 02750u);
  EXPECT_EQ(st.st_uid, svc_.uid);
  EXPECT_EQ(st.st_gid, mon_gid_);
  ASSERT_EQ(stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u) << "socket mode";
  EXPECT_EQ(st.st_uid, svc_.uid);
  EXPECT_EQ(st.st_gid, mon_gid_) << "the socket must take the directory's group";

  // The exporter (allowed, in the group) discovers the process and queries it.
  const CtlRun list = ctl(exporter_, {mon_gid_}, {"--format", "json", "list"});
  EXPECT_EQ(list.code, 0) << list.out << list.err;
  EXPECT_NE(list.out.find("\"pid\": " + pid), std::string::npos) << list.out << list.err;
  EXPECT_NE(list.out.find("\"live\""), std::string::npos) << list.out;
  const CtlRun status = ctl(exporter_, {mon_gid_}, {"--pid", pid, "status"});
  EXPECT_EQ(status.code, 0) << status.out << status.err;
  const CtlRun metrics = ctl(exporter_, {mon_gid_}, {"--all", "metrics"});
  EXPECT_EQ(metrics.code, 0) << metrics.out << metrics.err;
  EXPECT_NE(metrics.out.find("rsr_memory_usage_bytes"), std::string::npos) << metrics.out.substr(0, 2000);
  const CtlRun health = ctl(exporter_, {mon_gid_}, {"--pid", pid, "health-check"});
  EXPECT_EQ(health.code, 0) << health.out << health.err;
  const CtlRun leaks = ctl(exporter_, {mon_gid_}, {"--pid", pid, "--format", "json", "check-leaks"});
  EXPECT_LE(leaks.code, 1) << leaks.out << leaks.err;
  const CtlRun heap = ctl(exporter_, {mon_gid_}, {"--pid", pid, "heap-profile", "--format", "folded"});
  EXPECT_EQ(heap.code, 0) << heap.out << heap.err;

  // It may only query.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--pid", pid, "start-profiling", "--duration=1"},
        std::vector<std::string>{"--pid", pid, "update-metrics"}}) {
    const CtlRun r = ctl(exporter_, {mon_gid_}, args);
    EXPECT_EQ(r.code, 4) << args[2] << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("may only query"), std::string::npos) << args[2] << ": " << r.err;
  }

  // A member of the group that RSR_ALLOWED_UIDS does not name: a clear refusal from the library.
  const CtlRun stranger = ctl(stranger_, {mon_gid_}, {"--pid", pid, "status"});
  EXPECT_EQ(stranger.code, 4) << stranger.out << stranger.err;
  EXPECT_NE(stranger.err.find("permission denied: uid " + std::to_string(stranger_.uid)), std::string::npos)
      << stranger.err;
  // Outside the group: the directory keeps it out, and rsrmemctl says why.
  const CtlRun outsider = ctl(stranger_, {}, {"--pid", pid, "status"});
  EXPECT_NE(outsider.code, 0) << outsider.out << outsider.err;
  EXPECT_NE(outsider.err.find("Permission denied"), std::string::npos) << outsider.err;
  EXPECT_NE(outsider.err.find(dir_), std::string::npos) << outsider.err;

  // The exporter may not remove the socket of a process that is gone: it says so and goes on.
  p = Process();  // SIGKILL: no destructor, the socket stays
  ASSERT_EQ(access(sock.c_str(), F_OK), 0);
  const CtlRun after = ctl(exporter_, {mon_gid_}, {"--format", "json", "list"});
  EXPECT_EQ(after.code, 0) << after.out << after.err;
  EXPECT_NE(after.out.find("\"gone\""), std::string::npos) << after.out;
  EXPECT_EQ(access(sock.c_str(), F_OK), 0) << "the exporter removed the service user's socket";
  // The service user's next process removes it.
  Process next = service(/*allow_exporter=*/true);
  ASSERT_TRUE(rt::wait_for_socket(dir_, next.pid(), hostile::kSocketMs));
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "the stale socket survived the next start";
}

// Without RSR_ALLOWED_UIDS the library wants its directory to itself (0700): a group-readable
// one is refused with a line that says what to do, and the program runs on.
TEST_F(SecondUser, SharedDirectoryNeedsAllowedUids) {
  Process p = service(/*allow_exporter=*/false);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(rt::query(rt::socket_path(dir_, p.pid()), R"({"cmd":"hello"})", 1000).served());
  p.close_stdin();
  ASSERT_TRUE(p.wait(hostile::kLineMs));
  EXPECT_NE(p.err().find("RSR_ALLOWED_UIDS"), std::string::npos) << p.describe();
}

// The library creates a missing directory itself: 0700, or 0750 when RSR_ALLOWED_UIDS is set.
TEST(AllowedUids, DirectoryCreatedGroupReadableOnlyWhenSet) {
  for (const bool allowed : {false, true}) {
    SCOPED_TRACE(allowed ? "RSR_ALLOWED_UIDS set" : "no RSR_ALLOWED_UIDS");
    TempDir root;
    const std::string dir = root / "sockets";
    Spawn s;
    s.argv = {rt::program("idle")};
    s.socket_dir = dir;
    if (allowed) s.env["RSR_ALLOWED_UIDS"] = "4242";
    Process p(s);
    ASSERT_TRUE(p.read_line(hostile::kLineMs)) << p.describe();
    ASSERT_TRUE(rt::wait_for_socket(dir, p.pid(), hostile::kSocketMs));
    struct stat st;
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, allowed ? 0750u : 0700u);
    ASSERT_EQ(stat(rt::socket_path(dir, p.pid()).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, allowed ? 0660u : 0600u);
  }
}

}  // namespace
