#include "watchdog.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "errors.h"

namespace rsr::ctl::watchdog {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kGrace{250};

// Never destroyed: the thread may still wait on it while the process exits.
struct State {
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false;
  Clock::time_point deadline;
  std::string message;  // written as it is when the deadline passes: nothing to allocate then
};

State& state() {
  static State* s = new State;
  return *s;
}

std::string seconds_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(d.count()) / 1000);
  return buf;
}

// Call with the lock held.
void set(State& s, std::chrono::milliseconds timeout, const std::string& what) {
  s.deadline = Clock::now() + timeout + kGrace;
  s.message = "rsrmemctl: timed out after " + seconds_text(timeout) + " s (--timeout " +
              seconds_text(timeout) + "): " + what + " did not finish in time; giving up\n";
  s.cv.notify_all();
}

void watch() {
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mu);
  for (;;) {
    const Clock::time_point deadline = s.deadline;
    if (s.cv.wait_until(lock, deadline) == std::cv_status::timeout && s.deadline == deadline) {
      const std::string& m = s.message;
      ssize_t ignored = ::write(STDERR_FILENO, m.data(), m.size());
      (void)ignored;
      ::_exit(kExitConnection);
    }
  }
}

}  // namespace

void arm(std::chrono::milliseconds timeout) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.armed) return;
  s.armed = true;
  set(s, timeout, "the command");
  std::thread(watch).detach();
}

void renew(std::chrono::milliseconds timeout, const std::string& what) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.armed) set(s, timeout, what);
}

}  // namespace rsr::ctl::watchdog
