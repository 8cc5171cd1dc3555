// The control side's state: configuration, identity, socket, rates. Owned by the control
// thread; request handlers and the periodic tick run with `mutex` held.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <cstdint>

#include "../../common/config.h"
#include "../hot/engine.h"

namespace rsr::cold {

inline constexpr int kMaxWarnings = 16;
inline constexpr int kRateWindow = 60;  // seconds of per-second totals kept for rates

struct RatePoint {
  int64_t t_ms = 0;
  hot::Totals totals{};
};

struct ColdState {
  // What every process touches, first (start-up and exit): few pages of this are ever written.
  pid_t pid = 0;
  int64_t start_ms = 0;       // realtime
  int64_t start_mono_ms = 0;  // monotonic
  bool started = false;  // finish_start() ran (in this process or the parent it was forked from)
  bool heap_ok = false;
  // libunwind: loaded only once the library's own walker leaves a stack to it (unwinder_load()).
  enum class Unwinder { kNotNeeded, kLoaded, kFailed } unwinder = Unwinder::kNotNeeded;
  bool socket_ok = false;  // the socket is open and its file in place (control thread)
  bool tables_ok = false;
  int warning_count = 0;
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  Config config{};
  char socket_path[kPathMax]{};  // the control socket's file ("" while there is none)

  char warnings[kMaxWarnings][320]{};
  char program[kPathMax]{};
  char service[kNameMax]{};
  // The last part of argv[0] as the constructor found it (before main() can rewrite its title
  // over argv, as nginx does): the name the program was started as.
  char invoked_as[kNameMax]{};
  // XDG_RUNTIME_DIR as the constructor found it: the environment is read there only, before
  // main(); later the program may be rewriting it (bash leaves `environ` pointing to freed
  // arrays), and no thread of the library may read it then.
  char runtime_dir[kPathMax]{};

  RatePoint rates[kRateWindow]{};
  int rate_count = 0;
  int rate_next = 0;
  int64_t growth_baseline_ms = 0;     // realtime of the site snapshot and growth baseline
  int64_t last_baseline_mono_ms = 0;
};
extern ColdState g_cold;

const char* mode_name();

// The start-up's second half (lifecycle.cc): the module map, leak detection, the profiling
// writer (and libunwind when `with_unwinder`: no control thread will load it later). Once per
// process tree, with the mutex held. False when monitoring is off.
bool finish_start(bool with_unwinder = false);
// Loads libunwind if a stack waits for it (hot::g_unwinder_state is kUnwinderWanted) and wakes
// the stacks waiting; with the mutex held. The control thread asks at every turn.
void unwinder_load_if_wanted();

// Control thread (server.cc).
// Starts the control thread now. It waits `quiet_ms` (or less: until a stack wants libunwind),
// then finishes the start-up, makes the socket and serves.
bool start_control_thread(int64_t quiet_ms);
// Leaves the control thread to start at the first safe point (hot/launch.h), the start-up to
// finish `quiet_ms` from now: a process that execs or exits sooner costs no thread at all.
void defer_control_thread(int64_t quiet_ms);
void close_socket_at_exit();
// In a forked child, before its own control thread starts: lets go of the parent's socket and
// connections (this process's copies of them).
void socket_fork_child();
// Periodic work (handlers.cc), once a second with the mutex held.
void tick();

}  // namespace rsr::cold
