// Start-up, fork, exec and exit. Runs outside allocation hooks, with the guard held.
//
// Start-up comes in two halves. The constructor does what the hooks need from the first call on:
// the next allocator (resolved first: hooks work from the very first call, before this
// constructor), the configuration, the tables and the sampler. It starts no thread: the control
// thread starts at the first safe point after it (hot/launch.h: an allocation once the process
// has lived kQuietMs, or a call that waits) and does the rest (finish_start): the private heap,
// the module map, leak detection, the socket (and libunwind, once a stack needs it), once the
// program has lived kQuietMs, or at once when a sample wants libunwind first (stack.h). A
// program that exits sooner (a shell's /bin/true, a short command) makes no thread, loads no
// other shared object and makes no socket.
//
// The environment is read here only: once main() runs, the program may be rewriting it on its
// own thread (bash frees arrays while `environ` still points to them). mimalloc reads its options
// from `environ` when it is loaded, so the control thread loads it through librsrmem-heap.so,
// which gives it an empty environment of its own (heap/heap_env.c). libunwind (and liblzma with
// it) reads nothing of the environment.
// Any failure leaves the service running with the library passing calls through, after one log
// line.
#include <dlfcn.h>
#include <errno.h>  // program_invocation_short_name
#include <pthread.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../hot/api.h"
#include "../hot/private.h"
#include "../hot/stack.h"
#include "../hot/tables.h"
#include "../hot/unwind.h"
#include "../real.h"
#include "leaks.h"
#include "log.h"
#include "metrics.h"
#include "modules.h"
#include "private_libs.h"
#include "proc.h"
#include "profiling.h"
#include "state.h"
#include "tracking.h"

extern char** environ;

namespace rsr::cold {

RSR_LARGE_BSS constinit ColdState g_cold;

const char* mode_name() {
  switch (hot::g_engine.mode.load(std::memory_order_relaxed)) {
    case hot::kActive: return g_cold.config.memory_detailed_tracking ? "detailed" : "sampled";
    case hot::kStarting: return "starting";
    default: return "passthrough";
  }
}

namespace {

void record_warning(const char* name, const char* value, const char* used, void*) {
  char line[320];
  snprintf(line, sizeof line, "%s=\"%.120s\" is not valid; using %s", name, value, used);
  log(Level::kWarn, "%s", line);
  if (g_cold.warning_count < kMaxWarnings) {
    snprintf(g_cold.warnings[g_cold.warning_count++], sizeof g_cold.warnings[0], "%s", line);
  }
}

// RSR_FOLLOW_CHILDREN=false: programs this one executes start without the library. The process's
// environment array is edited in place, before main() reads it: setenv() would not do, because
// a program may bring its own (bash does, and keeps its variables apart until its main runs, so
// every child of a shell script would still be monitored). The edited value lives in static
// storage, like the original string did on the stack.
void drop_from_ld_preload() {
  RSR_LARGE_BSS static char g_kept[kPathMax + sizeof "LD_PRELOAD="];
  constexpr size_t kPrefix = sizeof "LD_PRELOAD=" - 1;
  bool first = true;
  for (char** e = environ; e && *e;) {
    if (std::strncmp(*e, "LD_PRELOAD=", kPrefix) != 0) {
      ++e;
      continue;
    }
    bool keep = false;
    if (first) {  // the one the loader and getenv() read; later duplicates go
      first = false;
      char buf[kPathMax];
      snprintf(buf, sizeof buf, "%s", *e + kPrefix);
      std::memcpy(g_kept, "LD_PRELOAD=", kPrefix + 1);
      char* save = nullptr;
      for (char* tok = strtok_r(buf, ": ", &save); tok; tok = strtok_r(nullptr, ": ", &save)) {
        if (std::strstr(tok, "librsrmem")) continue;
        if (g_kept[kPrefix]) strncat(g_kept, ":", sizeof g_kept - strlen(g_kept) - 1);
        strncat(g_kept, tok, sizeof g_kept - strlen(g_kept) - 1);
      }
      keep = g_kept[kPrefix] != '\0';
    }
    if (keep) {
      *e++ = g_kept;
      continue;
    }
    for (char** m = e; *m; ++m) m[0] = m[1];  // remove the entry, the terminator moves up too
  }
}

void set_identity() {
  g_cold.pid = getpid();
  g_cold.start_ms = now_ms();
  g_cold.start_mono_ms = monotonic_ms();
}

// The name the program was started as (glibc's program_invocation_short_name: argv[0]'s last
// part), kept by the constructor before main() runs; a login shell's leading '-' dropped.
void keep_invocation_name() {
  const char* name = program_invocation_short_name;
  if (!name) return;
  if (*name == '-') ++name;
  snprintf(g_cold.invoked_as, sizeof g_cold.invoked_as, "%s", name);
}

// The program's file and the service's name, read when the start-up finishes (a forked child
// keeps its parent's): reading /proc/self/exe is a path walk through procfs that a process
// exiting sooner need not pay for. The service is RSR_SERVICE_NAME, else the name the program
// was started as (a program started through a symbolic link, redis-server -> redis-check-rdb,
// is the link's name), else the executable's file name.
void name_program() {
  read_program(g_cold.program, sizeof g_cold.program);
  if (g_cold.config.service_name[0]) {
    snprintf(g_cold.service, sizeof g_cold.service, "%s", g_cold.config.service_name);
  } else if (g_cold.invoked_as[0]) {
    snprintf(g_cold.service, sizeof g_cold.service, "%s", g_cold.invoked_as);
  } else {
    const char* slash = strrchr(g_cold.program, '/');
    const char* name = slash ? slash + 1 : g_cold.program;
    const size_t n = strnlen(name, sizeof g_cold.service - 1);  // a longer name is cut
    memcpy(g_cold.service, name, n);
    g_cold.service[n] = '\0';
  }
}

void fork_prepare() {
  pthread_mutex_lock(&g_cold.mutex);
  hot::stack_atfork_prepare();
  hot::threads_atfork_prepare();
}

void fork_parent() {
  hot::threads_atfork_parent();
  hot::stack_atfork_parent();
  pthread_mutex_unlock(&g_cold.mutex);
}

// A process's control thread finishes the start-up (finish_start) and makes its socket this
// long after the process started, a forked child's this long after the fork; allocations start
// the thread from then on (hot/launch.h): processes that exec or exit within it (a shell loop, a
// fork storm, a pipeline) never pay for more than the constructor.
constexpr int64_t kQuietMs = 50;
constexpr int64_t kChildQuietMs = 100;

// The child has one thread and its own pid: it gets its own socket and control thread. The
// parent's socket file stays where it is (it belongs to the parent).
void fork_child() {
  hot::GuardScope guard;
  hot::threads_atfork_child();
  hot::stack_atfork_child();
  hot::barrier_register();  // the registration belongs to the address space, new in the child
  pthread_mutex_init(&g_cold.mutex, nullptr);
  socket_fork_child();
  g_cold.rate_count = g_cold.rate_next = 0;
  set_identity();
  profiling_fork_child();
  defer_control_thread(kChildQuietMs);
}

void fail_engine(const char* why) {
  log(Level::kError, "%s: monitoring is off, calls pass through", why);
  hot::g_passthrough = true;
  hot::g_engine.mode.store(hot::kFailed);
}

// The constructor's half: after it, the hooks count and sample.
void begin_engine() {
  const Config& c = g_cold.config;
  const uint64_t blocks = static_cast<uint64_t>(c.max_tracked_blocks) * (c.memory_detailed_tracking ? 32 : 1);
  if (!hot::tables_init(static_cast<uint64_t>(c.max_sites), blocks, static_cast<int>(c.stack_depth))) {
    fail_engine("cannot map the tracking tables");
    return;
  }
  g_cold.tables_ok = true;
  hot::g_stack.depth = static_cast<int>(c.stack_depth);
  module_range_of(reinterpret_cast<const void*>(&begin_engine), &hot::g_stack.self_lo, &hot::g_stack.self_hi);
  hot::g_engine.interval = c.memory_detailed_tracking ? 0 : static_cast<uint64_t>(c.sample_interval_bytes);
  // This thread drew its current interval with the built-in mean before the setting was read
  // (and forked children would inherit it): draw again with the configured one.
  hot::SamplerState& sampler = hot::t_state.sampler;
  sampler.bytes_until_sample =
      hot::g_engine.interval == 0 || sampler.rng == 0 ? 0 : hot::sampler_next_interval(sampler, hot::g_engine.interval);
  hot::countdown_arm(hot::t_state.countdown, sampler);
  publish_no_caches();
  hot::g_api_switches.caches_on.store(c.cache_metrics_enabled, std::memory_order_relaxed);
  hot::g_api_switches.on.store(true, std::memory_order_relaxed);
  hot::g_engine.mode.store(hot::kActive, std::memory_order_release);
}

__attribute__((constructor)) void rsrmem_start() {
  real::resolve();
  hot::GuardScope guard;
  parse_config([](const char* name) -> const char* { return getenv(name); }, record_warning, nullptr,
               &g_cold.config);
  set_log_level(g_cold.config.log_level);
  if (const char* runtime = getenv("XDG_RUNTIME_DIR"); runtime && strlen(runtime) < sizeof g_cold.runtime_dir)
    strcpy(g_cold.runtime_dir, runtime);
  if (getauxval(AT_SECURE)) {  // setuid/setgid: open nothing, read nothing the user controls
    hot::g_passthrough = true;
    hot::g_engine.mode.store(hot::kPassthrough);
    return;
  }
  if (!g_cold.config.follow_children) drop_from_ld_preload();
  if (!g_cold.config.memory_monitoring_enabled) {
    hot::g_passthrough = true;
    hot::g_engine.mode.store(hot::kPassthrough);
    return;
  }
  set_identity();
  keep_invocation_name();
  begin_engine();
  if (hot::g_engine.mode.load() != hot::kActive) return;
  tracking_start();
  hot::barrier_register();
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  defer_control_thread(kQuietMs);
}

__attribute__((destructor)) void rsrmem_stop() {
  if (hot::g_engine.mode.load() == hot::kActive && getpid() == g_cold.pid) {
    hot::GuardScope guard;
    profiling_at_exit();
  }
  close_socket_at_exit();
}

}  // namespace

namespace {

void unwinder_load() {
  if (g_cold.unwinder != ColdState::Unwinder::kNotNeeded) return;
  const bool ok = load_unwinder();
  g_cold.unwinder = ok ? ColdState::Unwinder::kLoaded : ColdState::Unwinder::kFailed;
  hot::unwinder_settled();
  if (!ok) log(Level::kWarn, "libunwind.so.8 could not be loaded: the stacks the walker leaves to it carry no frames");
}

}  // namespace

void unwinder_load_if_wanted() {
  if (hot::g_unwinder_state.load(std::memory_order_acquire) == hot::kUnwinderWanted) unwinder_load();
}

bool finish_start(bool with_unwinder) {
  if (g_cold.started) return hot::g_engine.mode.load() == hot::kActive;
  g_cold.started = true;
  if (hot::g_engine.mode.load() != hot::kActive) return false;
  if (!load_private_heap()) {
    const char* why = dlerror();
    char what[400];
    snprintf(what, sizeof what,
             "the private heap (librsrmem-heap.so, beside the library or on the loader's path, and mimalloc) "
             "could not be loaded: %s",
             why ? why : "?");
    fail_engine(what);
    return false;
  }
  g_cold.heap_ok = true;
  hot::g_private_ready.store(true, std::memory_order_release);
  name_program();
  if (with_unwinder) unwinder_load();
  try {
    refresh_modules();
  } catch (...) {  // out of private heap: the map fills in on the next refresh
  }
  metrics_start();
  try {
    leaks_init();
  } catch (...) {  // out of private heap: leak detection stays off
  }
  profiling_start_writer();
  log(Level::kInfo, "monitoring %s", g_cold.program);
  return true;
}

}  // namespace rsr::cold

// dlclose() is wrapped so the module map learns about a library before it disappears (samples
// taken in it stay symbolizable) and the stack walker forgets the rules it learned from its
// code once it is gone (other code may be loaded at its addresses).
extern "C" __attribute__((visibility("default"))) int dlclose(void* handle) {
  using Fn = int (*)(void*);
  static Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "dlclose"));
  if (!next) return -1;
  if (rsr::hot::g_engine.mode.load(std::memory_order_acquire) == rsr::hot::kActive &&
      rsr::hot::t_state.guard == 0) {
    rsr::hot::GuardScope guard;
    pthread_mutex_lock(&rsr::cold::g_cold.mutex);
    try {
      if (rsr::cold::finish_start()) rsr::cold::refresh_modules();
    } catch (...) {  // out of private heap: the library's frames stay unresolved
    }
    pthread_mutex_unlock(&rsr::cold::g_cold.mutex);
  }
  const int rc = next(handle);
  rsr::hot::walk_forget();
  return rc;
}
