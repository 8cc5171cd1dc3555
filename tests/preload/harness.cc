#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace rt {
namespace {

using Clock = std::chrono::steady_clock;

// Process-wide set-up: writes to a dead child's stdin must not kill the harness, and every
// orphaned grandchild (pre-fork workers, exec'd children) is re-parented to us so the guards
// can reap it.
struct HarnessInit {
  HarnessInit() {
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  }
} g_init;

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::string env_path(const char* name, bool required) {
  const char* v = getenv(name);
  if (!v || !*v) {
    if (required) ADD_FAILURE() << name << " is not set: run this test through `meson test`";
    return "";
  }
  return v;
}

bool read_exact(int fd, void* buf, size_t n, Clock::time_point deadline, std::string* why) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t got = 0;
  while (got < n) {
    pollfd pfd{fd, POLLIN, 0};
    const int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r == 0) {
      *why = "timeout";
      return false;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      *why = std::string("poll: ") + strerror(errno);
      return false;
    }
    const ssize_t k = ::read(fd, p + got, n - got);
    if (k == 0) {
      *why = "closed";
      return false;
    }
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *why = std::string("closed (") + strerror(errno) + ")";
      return false;
    }
    got += static_cast<size_t>(k);
  }
  return true;
}

}  // namespace

std::string preload_lib() { return env_path("RSR_TEST_LIB", true); }

std::string preload_heap_lib() {
  const std::string lib = preload_lib();
  return lib.substr(0, lib.rfind('/') + 1) + "librsrmem-heap.so";
}
std::string program(const std::string& name) { return env_path("RSR_TEST_BIN", true) + "/" + name; }
std::string ctl_path() { return env_path("RSR_TEST_CTL", false); }

// ---------------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir(const std::string& tag) {
  std::string tmpl = "/tmp/" + tag + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    ADD_FAILURE() << "mkdtemp: " << strerror(errno);
    return;
  }
  path_ = buf.data();
  chmod(path_.c_str(), 0700);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) == 0 ? 0 : 0; }, 16,
      FTW_DEPTH | FTW_PHYS);
}

// ---------------------------------------------------------------------------------------------
// Process

std::vector<std::string> child_environment(const Spawn& s) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (kv.rfind("LD_PRELOAD=", 0) == 0 || kv.rfind("RSR_", 0) == 0) continue;
    const std::string name = kv.substr(0, kv.find('='));
    if (s.env.count(name)) continue;
    env.push_back(kv);
  }
  if (s.preload) {
    env.push_back("LD_PRELOAD=" + (s.preload_path.empty() ? preload_lib() : s.preload_path));
    if (!s.socket_dir.empty() && !s.env.count("RSR_SOCKET_DIR")) env.push_back("RSR_SOCKET_DIR=" + s.socket_dir);
  }
  for (const auto& [k, v] : s.env) env.push_back(k + "=" + v);
  return env;
}

Process::Process(const Spawn& s) {
  if (s.argv.empty()) {
    ADD_FAILURE() << "empty argv";
    return;
  }
  if (s.preload && s.socket_dir.empty() && !s.env.count("RSR_SOCKET_DIR") && !s.env.count("XDG_RUNTIME_DIR"))
    ADD_FAILURE() << "a preloaded process needs its own socket dir";
  std::vector<std::string> env = child_environment(s);
  std::vector<char*> argv, envp;
  for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return;
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!s.cwd.empty() && chdir(s.cwd.c_str()) != 0) _exit(126);
    if (s.uid != static_cast<uid_t>(-1)) {
      if (setgroups(s.groups.size(), s.groups.data()) != 0 || setgid(s.gid) != 0 || setuid(s.uid) != 0) {
        static const char msg[] = "harness: cannot drop privileges\n";
        (void)!::write(2, msg, sizeof msg - 1);
        _exit(126);
      }
    }
    execvpe(argv[0], argv.data(), envp.data());
    const char* e = strerror(errno);
    (void)!::write(2, "harness: exec failed: ", 22);
    (void)!::write(2, e, strlen(e));
    (void)!::write(2, "\n", 1);
    _exit(127);
  }
  setpgid(pid, pid);
  pid_ = pid;
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
}

Process::~Process() { kill_and_reap(); }

Process::Process(Process&& o) noexcept { *this = std::move(o); }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    kill_and_reap();
    pid_ = o.pid_;
    in_ = o.in_;
    out_fd_ = o.out_fd_;
    err_fd_ = o.err_fd_;
    out_buf_ = std::move(o.out_buf_);
    out_all_ = std::move(o.out_all_);
    err_ = std::move(o.err_);
    status_ = o.status_;
    o.pid_ = -1;
    o.in_ = o.out_fd_ = o.err_fd_ = -1;
  }
  return *this;
}

void Process::kill_and_reap() {
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);
    if (!status_) {
      kill(pid_, SIGKILL);
      int st = 0;
      while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      status_ = st;
    }
    // Members of the group re-parented to us (we are a child subreaper).
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    for (;;) {
      int st = 0;
      const pid_t r = waitpid(-pid_, &st, WNOHANG);
      if (r > 0) continue;
      if (r < 0 && errno != EINTR) break;  // ECHILD: none left
      if (Clock::now() > deadline) break;
      kill(-pid_, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  close_fd(in_);
  close_fd(out_fd_);
  close_fd(err_fd_);
  pid_ = -1;
}

bool Process::write(const std::string& text) {
  if (in_ < 0) return false;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t k = ::write(in_, text.data() + done, text.size() - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(k);
  }
  return true;
}

void Process::close_stdin() { close_fd(in_); }

void Process::pump(int timeout_ms) {
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) {
    if (timeout_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 10)));
    return;
  }
  const int r = poll(fds, n, timeout_ms);
  if (r <= 0) return;
  for (int i = 0; i < n; ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char buf[65536];
    const ssize_t k = ::read(fds[i].fd, buf, sizeof buf);
    const bool is_out = fds[i].fd == out_fd_;
    if (k <= 0) {
      if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      close_fd(is_out ? out_fd_ : err_fd_);
      continue;
    }
    if (is_out) {
      out_buf_.append(buf, static_cast<size_t>(k));
      out_all_.append(buf, static_cast<size_t>(k));
    } else {
      err_.append(buf, static_cast<size_t>(k));
    }
  }
}

std::optional<std::string> Process::read_line(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const size_t nl = out_buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = out_buf_.substr(0, nl);
      out_buf_.erase(0, nl + 1);
      return line;
    }
    if (out_fd_ < 0) {
      if (out_buf_.empty()) return std::nullopt;
      std::string line;
      line.swap(out_buf_);
      return line;
    }
    const int left = remaining_ms(deadline);
    if (left == 0) return std::nullopt;
    pump(left);
  }
}

std::optional<int> Process::wait(int timeout_ms) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      break;
    }
    if (r < 0 && errno != EINTR) {
      status_ = -1;
      break;
    }
    const int left = remaining_ms(deadline);
    if (left == 0) return std::nullopt;
    pump(std::min(left, 20));
  }
  // Collect what is left; grandchildren may hold the pipes open, so do not wait long for EOF.
  const auto drain_deadline = Clock::now() + std::chrono::milliseconds(500);
  while ((out_fd_ >= 0 || err_fd_ >= 0) && remaining_ms(drain_deadline) > 0) pump(remaining_ms(drain_deadline));
  return status_;
}

std::string describe_status(int st) {
  if (st == -1) return "unknown status";
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return "killed by signal " + std::to_string(WTERMSIG(st)) + " (" + strsignal(WTERMSIG(st)) + ")" +
           (WCOREDUMP(st) ? ", core dumped" : "");
  return "status " + std::to_string(st);
}

std::string Process::describe() const {
  std::ostringstream o;
  o << "pid " << pid_ << (status_ ? ", " + describe_status(*status_) : ", running") << "\n--- stdout ---\n"
    << out_all_.substr(0, 4000) << "\n--- stderr ---\n"
    << err_.substr(0, 4000);
  return o.str();
}

std::string RunResult::describe() const {
  std::ostringstream o;
  o << (!started ? "did not start" : timed_out ? "timed out" : describe_status(status)) << "\n--- stdout ---\n"
    << out.substr(0, 4000) << "\n--- stderr ---\n"
    << err.substr(0, 4000);
  return o.str();
}

RunResult run(const Spawn& s, int timeout_ms, const std::string& input) {
  RunResult r;
  Process p(s);
  if (!p.started()) return r;
  r.started = true;
  p.write(input);
  p.close_stdin();
  const auto st = p.wait(timeout_ms);
  if (!st) {
    r.timed_out = true;
  } else {
    r.status = *st;
  }
  r.out = p.out();
  r.err = p.err();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Control socket

std::string Reply::describe() const {
  static const char* const names[] = {"ok", "connect failed", "closed", "timeout", "bad frame", "bad json"};
  std::string s = names[static_cast<int>(status)];
  if (status == Status::kOk || status == Status::kBadJson)
    s += kind == rsr::proto::Kind::kResponse ? " (response)" : kind == rsr::proto::Kind::kError ? " (error frame)" : " (request?)";
  if (!error.empty()) s += ": " + error;
  if (!payload.empty()) s += " payload=" + payload.substr(0, 600);
  return s;
}

Reply query(const std::string& path, const std::string& request, int timeout_ms, int send_after_ms) {
  using namespace rsr::proto;
  Reply r;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.error = strerror(errno);
    return r;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    r.error = "path too long";
    ::close(fd);
    return r;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    r.error = path + ": " + strerror(errno);
    ::close(fd);
    return r;
  }
  std::string frame(kHeaderBytes, '\0');
  encode_header(Kind::kRequest, static_cast<uint32_t>(request.size()), reinterpret_cast<uint8_t*>(frame.data()));
  frame += request;
  if (send_after_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(send_after_ms));
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t k = send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      break;  // refused peers may be cut off mid-request; still read what the server said
    }
    sent += static_cast<size_t>(k);
  }
  uint8_t hdr[kHeaderBytes];
  std::string why;
  if (!read_exact(fd, hdr, sizeof hdr, deadline, &why)) {
    r.status = why == "timeout" ? Reply::Status::kTimeout : Reply::Status::kClosed;
    r.error = why;
    ::close(fd);
    return r;
  }
  FrameHeader h;
  const DecodeStatus ds = decode_header(hdr, sizeof hdr, kMaxResponseBytes, &h);
  if (ds != DecodeStatus::kOk) {
    r.status = Reply::Status::kBadFrame;
    r.error = describe(ds);
    ::close(fd);
    return r;
  }
  r.kind = h.kind;
  r.payload.resize(h.length);
  if (h.length && !read_exact(fd, r.payload.data(), h.length, deadline, &why)) {
    r.status = why == "timeout" ? Reply::Status::kTimeout : Reply::Status::kBadFrame;
    r.error = "payload: " + why;
    ::close(fd);
    return r;
  }
  ::close(fd);
  try {
    r.json = nlohmann::json::parse(r.payload);
    r.status = Reply::Status::kOk;
  } catch (const std::exception& e) {
    r.status = Reply::Status::kBadJson;
    r.error = e.what();
  }
  return r;
}

std::string socket_path(const std::string& dir, pid_t pid) { return dir + "/" + std::to_string(pid) + ".sock"; }

Reply summary(const std::string& dir, pid_t pid, int top) {
  return query(socket_path(dir, pid), R"({"cmd":"summary","top":)" + std::to_string(top) + "}");
}

int64_t heap_field(const Reply& r, const char* field) {
  if (!r.served() || !r.json.contains("heap") || !r.json["heap"].contains(field) ||
      !r.json["heap"][field].is_number_integer()) {
    ADD_FAILURE() << "no integer heap." << field << " in " << r.describe();
    return -1;
  }
  const auto& v = r.json["heap"][field];
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    ADD_FAILURE() << "heap." << field << " = " << v.get<uint64_t>() << ": a counter went below zero";
  return static_cast<int64_t>(v.get<uint64_t>());
}

bool wait_for_socket(const std::string& dir, pid_t pid, int timeout_ms, Reply* last) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string path = socket_path(dir, pid);
  Reply r;
  for (;;) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      r = query(path, R"({"cmd":"hello"})", std::max(100, std::min(2000, remaining_ms(deadline))));
      if (r.served()) break;
    } else {
      r.status = Reply::Status::kConnectFailed;
      r.error = path + " does not exist";
    }
    if (remaining_ms(deadline) == 0) {
      if (last) *last = r;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (last) *last = r;
  return true;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream o;
  o << in.rdbuf();
  return o.str();
}

std::string run_text(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  chmod(path.c_str(), mode);
}

bool maps_contain(pid_t pid, const std::string& needle) {
  return read_file("/proc/" + std::to_string(pid) + "/maps").find(needle) != std::string::npos;
}

std::string as_user(uid_t uid, gid_t gid, const std::function<std::string()>& fn, int timeout_ms) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(p[0]);
    std::string result;
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0 || getuid() != uid) {
      result = "cannot drop privileges";
    } else {
      result = fn();
    }
    (void)!::write(p[1], result.data(), result.size());
    _exit(0);
  }
  ::close(p[1]);
  std::string out;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pollfd pfd{p[0], POLLIN, 0};
    if (poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
      out += "<as_user timed out>";
      break;
    }
    char buf[4096];
    const ssize_t k = ::read(p[0], buf, sizeof buf);
    if (k <= 0) break;
    out.append(buf, static_cast<size_t>(k));
  }
  ::close(p[0]);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  return out;
}

}  // namespace rt
