// Profiling captures: requests, the writer thread and the capture files (see profiling.h).
#include "profiling.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_customMem: zstd allocates on the private heap
#include <zstd.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "../../common/capture_files.h"
#include "../../common/capture_format.h"
#include "../../common/math.h"
#include "../hot/capture.h"
#include "../hot/tables.h"
#include "event_merge.h"
#include "fds.h"
#include "log.h"
#include "modules.h"
#include "private_libs.h"
#include "proc.h"
#include "state.h"

namespace rsr::cold {
namespace {

namespace cap = rsr::capture;

constexpr const char* kLibraryVersion = "0.1.0";
constexpr uint32_t kPoolBuffers = 1024;           // 64 MiB of event buffers (resident as used)
constexpr uint32_t kScopeEvents = 32768;          // 1 MiB of events per captured scope
constexpr int kMaxScopesInFlight = 8;
constexpr size_t kRawBytes = 256 * 1024;          // records per zstd block flush
constexpr uint64_t kEndReserve = 1024;            // room kept for the END record's frame
constexpr int kZstdLevel = 3;  // zstd's default: the writer keeps up with busy threads on another core
constexpr int kZstdWindowLog = 20;  // what readers accept (ctl/capture_limits.h)
constexpr int64_t kHandoverAgeNs = 100000000;  // a buffer's oldest event, before it is handed over
constexpr int64_t kCollectEveryNs = 100000000;  // threads' buffers collected, events written up to then
constexpr int64_t kCollectMarginNs = 50000;     // events stamped this close to a collection wait for the next
constexpr int kCollectWaitMs = 100;             // for threads inside an append, at a collection
constexpr uint64_t kTimeUnitNs = 1000000;       // the time unit of background captures (1 ms)
constexpr uint64_t kScopeTimeUnitNs = 10000;    // and of scope captures (10 us)
constexpr int kStopWaitMs = 5000;
constexpr int kExitWaitMs = 2000;

int64_t real_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void utc_stamp(int64_t real, char* out, size_t cap) {
  const time_t secs = static_cast<time_t>(real / 1000000000LL);
  tm t{};
  gmtime_r(&secs, &t);
  strftime(out, cap, "%Y%m%d_%H%M%S", &t);
}

// Makes sure the output directory exists (created 0700) and is private to us.
bool prepare_output_dir(const char* dir, char* err, size_t cap) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, cap, "profiling output directory %s is unusable: %s", dir, strerror(errno));
    return false;
  }
  struct stat st{};
  if (lstat(dir, &st) != 0) {
    snprintf(err, cap, "profiling output directory %s is unusable: %s", dir, strerror(errno));
    return false;
  }
  if (S_ISLNK(st.st_mode)) {
    snprintf(err, cap, "profiling output directory %s is unusable: it is a symbolic link", dir);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, cap, "profiling output directory %s is unusable: %s", dir, strerror(ENOTDIR));
    return false;
  }
  if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    snprintf(err, cap,
             "profiling output directory %s is unusable: it must be owned by uid %u and not group/world-writable "
             "(is uid %u, mode %03o)",
             dir, static_cast<unsigned>(geteuid()), static_cast<unsigned>(st.st_uid),
             static_cast<unsigned>(st.st_mode & 0777));
    return false;
  }
  return true;
}

// Event ticks to CLOCK_MONOTONIC ns (hot/capture.h): one linear map per file, so events keep
// their order, with the rate measured over the time since start-up when the file opens.
struct TickClock {
  bool identity = true;  // the events carry ns already
  uint64_t t0 = 0;
  int64_t ns0 = 0;
  double ns_per_tick = 1.0;
  int64_t to_ns(uint64_t ticks) const {
    if (identity) return static_cast<int64_t>(ticks);
    return ns0 + math::round_to_int(static_cast<double>(static_cast<int64_t>(ticks - t0)) * ns_per_tick);
  }
};

// `settle`: a rate measured over less than 100 ms is worth a short wait (a background capture
// started right after start-up; the control thread waits, never the service's threads).
TickClock tick_clock(bool settle) {
  TickClock k;
  const hot::CaptureHot& c = hot::g_capture;
  if (!c.tsc) return k;
  constexpr int64_t kSpanNs = 100000000;
  int64_t ns1 = hot::monotonic_ns();
  if (settle && ns1 - c.ns0 < kSpanNs) {
    const int64_t wait = kSpanNs - (ns1 - c.ns0);
    timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
    nanosleep(&ts, nullptr);
    ns1 = hot::monotonic_ns();
  }
  const uint64_t t1 = __rdtsc();
  k.identity = false;
  k.t0 = c.tsc0;
  k.ns0 = c.ns0;
  k.ns_per_tick = t1 > c.tsc0 && ns1 > c.ns0 ? static_cast<double>(ns1 - c.ns0) / static_cast<double>(t1 - c.tsc0)
                                              : 1.0 / 3.0;
  return k;
}

void* zstd_alloc(void*, size_t n) { return heap_alloc(n); }
void zstd_free(void*, void* p) { heap_free(p); }

// libzstd, loaded (privately) at the first capture: a process that never captures never maps it.
struct Zstd {
  decltype(&ZSTD_createCCtx_advanced) create = nullptr;
  decltype(&ZSTD_freeCCtx) free_cctx = nullptr;
  decltype(&ZSTD_compressBound) bound = nullptr;
  decltype(&ZSTD_compressStream2) compress = nullptr;
  decltype(&ZSTD_CCtx_setParameter) set = nullptr;
  decltype(&ZSTD_CCtx_reset) reset = nullptr;
  decltype(&ZSTD_isError) is_error = nullptr;
};
Zstd g_zstd;
std::atomic<bool> g_zstd_ready{false};
pthread_mutex_t g_zstd_mutex = PTHREAD_MUTEX_INITIALIZER;

// Loads libzstd once; false (with the reason in `err`) when it cannot.
bool load_zstd(char* err, size_t cap) {
  if (g_zstd_ready.load(std::memory_order_acquire)) return true;
  pthread_mutex_lock(&g_zstd_mutex);
  if (!g_zstd_ready.load(std::memory_order_relaxed)) {
    void* lib = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    Zstd z;
    if (lib && bind_symbol(lib, "ZSTD_createCCtx_advanced", &z.create) && bind_symbol(lib, "ZSTD_freeCCtx", &z.free_cctx) &&
        bind_symbol(lib, "ZSTD_compressBound", &z.bound) && bind_symbol(lib, "ZSTD_compressStream2", &z.compress) &&
        bind_symbol(lib, "ZSTD_CCtx_setParameter", &z.set) && bind_symbol(lib, "ZSTD_CCtx_reset", &z.reset) &&
        bind_symbol(lib, "ZSTD_isError", &z.is_error)) {
      g_zstd = z;
      g_zstd_ready.store(true, std::memory_order_release);
    } else {
      const char* why = dlerror();
      snprintf(err, cap, "cannot load libzstd.so.1 for the capture: %s", why ? why : "a function is missing");
    }
  }
  pthread_mutex_unlock(&g_zstd_mutex);
  return g_zstd_ready.load(std::memory_order_acquire);
}

struct Stats {
  std::atomic<uint64_t> events{0}, bytes{0}, dropped{0};
};

// One capture file being written: the record stream, its frames, what it already described.
class CaptureFile {
 public:
  ~CaptureFile() {
    release(file_);
    if (cctx_) g_zstd.free_cctx(cctx_);
    heap_free(raw_);
    heap_free(frame_);
    heap_free(stacks_seen_);
    heap_delete(encoder_);
    heap_delete(threads_seen_);
  }

  bool open(const char* path, uint64_t max_bytes, uint64_t unit_ns, Stats* stats, char* err, size_t cap) {
    snprintf(path_, sizeof path_, "%s", path);
    snprintf(part_, sizeof part_, "%s.part", path);
    max_bytes_ = max_bytes;
    stats_ = stats;
    if (!load_zstd(err, cap)) return false;
    struct stat st{};
    if (lstat(path_, &st) == 0) {
      snprintf(err, cap, "capture file %s already exists", path_);
      return false;
    }
    file_ = open_owned(part_, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    if (!file_.valid()) {
      snprintf(err, cap, "cannot create %s: %s", part_, strerror(errno));
      return false;
    }
    identity_ = file_;
    cctx_ = g_zstd.create(ZSTD_customMem{zstd_alloc, zstd_free, nullptr});
    raw_ = static_cast<uint8_t*>(heap_alloc(kRawBytes));
    frame_cap_ = g_zstd.bound(kRawBytes) + 1024;
    if (cctx_) {
      g_zstd.set(cctx_, ZSTD_c_compressionLevel, kZstdLevel);
      g_zstd.set(cctx_, ZSTD_c_windowLog, kZstdWindowLog);
    }
    frame_ = static_cast<uint8_t*>(heap_alloc(frame_cap_));
    stack_words_ = (hot::site_slots() + 1 + 63) / 64;
    stacks_seen_ = static_cast<uint64_t*>(heap_alloc(stack_words_ * 8));
    const Memory mem{heap_alloc, heap_free};
    if (void* p = heap_alloc(sizeof(cap::EventEncoder)))
      encoder_ = new (p) cap::EventEncoder(mem, unit_ns, writer_, &CaptureFile::flush_for_encoder, this);
    if (void* p = heap_alloc(sizeof(ThreadSet))) threads_seen_ = new (p) ThreadSet(mem);
    if (!cctx_ || !raw_ || !frame_ || !stacks_seen_ || !encoder_ || !threads_seen_) {
      snprintf(err, cap, "out of memory for the capture");
      unlink(part_);
      return false;
    }
    std::memset(stacks_seen_, 0, stack_words_ * 8);
    writer_ = cap::RecordWriter(raw_, kRawBytes);
    uint8_t header[cap::kFileHeaderBytes];
    cap::encode_file_header(header);
    if (!write_all(header, sizeof header)) {
      snprintf(err, cap, "cannot write %s: %s", part_, strerror(error_));
      unlink(part_);
      return false;
    }
    return true;
  }

  void set_start(int64_t mono, const TickClock& clock) {
    start_ns_ = mono;
    clock_ = clock;
  }
  // In a forked child: the file is the parent's; close our descriptor and touch nothing else.
  void abandon() { release(file_); }
  bool failed() const { return error_ != 0; }
  bool full() const { return size_limited_; }
  int error() const { return error_; }
  const char* path() const { return path_; }

  void json(cap::Record type, const String& text) { put([&] { return writer_.json(type, text); }); }

  // Module records for modules()[from..): returns the new count.
  size_t modules_from(size_t from) {
    const Vector<Module>& all = modules();
    for (size_t i = from; i < all.size(); ++i) {
      const Module& m = all[i];
      if (!m.loaded) continue;
      put([&] { return writer_.module(m.start, m.end, m.base, m.path, m.build_id); });
    }
    return all.size();
  }

  // A THREAD record the first time `tid` is seen.
  void thread(uint64_t tid) {
    if (tid == last_tid_) return;
    last_tid_ = tid;
    bool fresh = false;
    if (!threads_seen_->insert(tid, 1, &fresh) || !fresh) return;
    char path[64], name[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%llu/comm", static_cast<unsigned long long>(tid));
    read_small_file(path, name, sizeof name);
    if (char* nl = strchr(name, '\n')) *nl = '\0';
    put([&] { return writer_.thread(tid, name); });
  }

  // Events in time order (EventMerge).
  void event(uint64_t tid, const hot::Event& e) {
    thread(tid);
    if (e.kind == hot::kEventAlloc && e.stack != 0) stack(e.stack);
    const int64_t t = clock_.to_ns(e.ticks) - start_ns_;
    if (e.kind == hot::kEventAlloc) encoder_->alloc(t, tid, e.address, e.size, e.stack);
    else encoder_->free(t, tid, e.address);
  }

  // The process's heap and resident bytes at `ticks` (read then).
  void counters(uint64_t ticks, uint64_t heap_bytes, uint64_t rss_bytes) {
    const int64_t t = clock_.to_ns(ticks) - start_ns_;
    encoder_->counters(t, heap_bytes, rss_bytes);
  }
  uint64_t untracked_blocks() const { return encoder_ ? encoder_->untracked() : 0; }

  // Compresses what is buffered into one frame and writes it, within the size cap.
  bool flush() {
    if (writer_.size() == 0 || error_ || size_limited_) return !error_;
    size_t n = 0;
    const bool ok = compress(ZSTD_e_flush, &n);
    writer_.clear();
    if (!ok) {
      error_ = ENOMEM;
      return false;
    }
    // A block past the cap is not written: the stream ends before it (finish()).
    if (offset_ + n + kEndReserve > max_bytes_) {
      size_limited_ = true;
      return true;
    }
    if (!write_all(frame_, n)) return false;
    stats_->events.store(encoder_->events(), std::memory_order_relaxed);  // all in what was written
    return true;
  }

  // Detects a file whose directory was removed under it, or a descriptor the program closed.
  void check_linked() {
    struct stat st{};
    if (!error_ && owned() && fstat(file_.fd, &st) == 0 && st.st_nlink == 0) error_ = ENOENT;
  }

  // Writes the END record (when it can) and renames the file (when it can).
  void finish(const char* reason, bool truncated) {
    owned();  // a lost descriptor makes this a write error
    encoder_->end_tick();
    flush();
    if (size_limited_) {
      reason = "size_limit";
      truncated = true;
    }
    if (error_) {
      reason = "write_error";
      truncated = true;
    }
    String text;
    {
      Writer w(text);
      w.begin_object()
          .field("reason", reason)
          .field("truncated", truncated)
          .field("end_time", static_cast<double>(real_ns()) / 1e9)
          .field("events", stats_->events.load())
          .field("dropped_events", stats_->dropped.load())
          .field("untracked_blocks", untracked_blocks())
          .end_object();
    }
    reason_ = reason;
    const int saved_error = error_;
    error_ = 0;
    size_limited_ = false;
    if (!file_.valid()) reopen();
    // Drops a block cut short, ends the stream's frame after the last complete one (an empty
    // last block, which needs none of the blocks left out), and writes END in a frame of its own.
    if (owned() && ftruncate(file_.fd, static_cast<off_t>(offset_)) == 0 &&
        lseek(file_.fd, static_cast<off_t>(offset_), SEEK_SET) >= 0) {
      writer_.clear();
      size_t n = 0;
      if (compress(ZSTD_e_end, &n) && offset_ + n <= max_bytes_) write_all(frame_, n);
      g_zstd.reset(cctx_, ZSTD_reset_session_only);
      if (writer_.json(cap::Record::kEnd, text) && compress(ZSTD_e_end, &n) && offset_ + n <= max_bytes_)
        write_all(frame_, n);
    }
    if (saved_error) error_ = saved_error;
    release(file_);
    if (rename(part_, path_) != 0)
      log(Level::kWarn, "capture %s could not be renamed: %s", part_, strerror(errno));
  }
  const char* reason() const { return reason_; }

 private:
  template <class F>
  bool put(F append) {
    if (error_ || size_limited_) return false;
    if (append()) return true;
    if (!flush() || size_limited_) return false;
    return append();
  }

  void stack(uint32_t id) {
    if (id / 64 >= stack_words_) return;
    uint64_t& word = stacks_seen_[id / 64];
    const uint64_t bit = uint64_t{1} << (id % 64);
    if (word & bit) return;
    const hot::Site& s = hot::site_at(id - 1);
    uint64_t frames[hot::kMaxDepth];
    size_t n = 0;
    if (s.ready.load(std::memory_order_acquire)) {
      const uintptr_t* f = hot::g_tables.pool + s.frames_at;
      for (uint32_t i = 0; i < s.depth && n < hot::kMaxDepth; ++i) frames[n++] = f[i];
    }
    if (put([&] { return writer_.stack(id, frames, n); })) word |= bit;
  }

  static bool flush_for_encoder(void* self) {
    CaptureFile& f = *static_cast<CaptureFile*>(self);
    return f.flush() && !f.size_limited_;
  }

  // Compresses what `writer_` holds into `frame_`: `n` bytes to write. e_flush ends a block
  // (every record so far decodable, the history kept for what follows); e_end ends the frame.
  bool compress(ZSTD_EndDirective how, size_t* n) {
    ZSTD_inBuffer in{raw_, writer_.size(), 0};
    ZSTD_outBuffer out{frame_, frame_cap_, 0};
    for (;;) {
      const size_t left = g_zstd.compress(cctx_, &out, &in, how);
      if (g_zstd.is_error(left)) return false;
      if (left == 0) break;
      if (out.pos == out.size) return false;  // cannot happen: frame_cap_ bounds a block's output
    }
    *n = out.pos;
    return true;
  }

  // Whether the descriptor is still the capture's. A program that closed it (daemons close every
  // descriptor) may have another file under that number now: the capture then ends as a write
  // error, and that descriptor is never written, truncated or closed by us.
  bool owned() {
    if (still_ours(file_)) return true;
    if (file_.valid()) {
      forget(file_);
      if (!error_) error_ = EBADF;
      log(Level::kWarn, "capture %s: its descriptor was closed by the program; the capture ends", part_);
    }
    return false;
  }

  // After a lost descriptor: the .part file again by its path, if it is still the one we created.
  void reopen() {
    OwnedFd f = open_owned(part_, O_WRONLY | O_NOFOLLOW);
    if (f.valid() && f.dev == identity_.dev && f.ino == identity_.ino) file_ = f;
    else release(f);
  }

  bool write_all(const uint8_t* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      if (!owned()) return false;
      const ssize_t k = ::write(file_.fd, p + done, n - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        error_ = k < 0 ? errno : ENOSPC;
        return false;
      }
      done += static_cast<size_t>(k);
    }
    offset_ += n;
    stats_->bytes.store(offset_, std::memory_order_relaxed);
    return true;
  }

  OwnedFd file_;
  OwnedFd identity_;  // what file_ was opened on, kept after file_ is lost
  char path_[kPathMax]{}, part_[kPathMax + 8]{};
  ZSTD_CCtx* cctx_ = nullptr;
  uint8_t* raw_ = nullptr;
  uint8_t* frame_ = nullptr;
  size_t frame_cap_ = 0;
  cap::RecordWriter writer_{nullptr, 0};
  uint64_t* stacks_seen_ = nullptr;
  size_t stack_words_ = 0;
  using ThreadSet = FlatMap<uint64_t, uint8_t, MixHash>;
  cap::EventEncoder* encoder_ = nullptr;
  ThreadSet* threads_seen_ = nullptr;
  uint64_t last_tid_ = 0;
  uint64_t offset_ = 0, max_bytes_ = 0;
  int64_t start_ns_ = 0;
  TickClock clock_;
  int error_ = 0;
  bool size_limited_ = false;
  Stats* stats_ = nullptr;
  const char* reason_ = "stopped";
};

String header_json(const char* id, const char* kind, const char* scope, int64_t start_real, double duration_s,
                   uint64_t max_bytes, uint64_t unit_ns) {
  String text;
  Writer w(text);
  w.begin_object()
      .field("format", "rsrmem-capture")
      .field("version", cap::kVersion)
      .field("id", id)
      .field("kind", kind);
  if (scope) w.field("scope", scope);
  w.field("pid", static_cast<int64_t>(g_cold.pid)).field("program", g_cold.program).field("service", g_cold.service);
  w.field("allocator_wrappers", g_cold.config.allocator_wrappers);
  write_cmdline(w);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  w.field("hostname", host)
      .field("library_version", kLibraryVersion)
      .field("start_time", static_cast<double>(start_real) / 1e9)
      .field("duration_s", duration_s)
      .field("max_bytes", max_bytes)
      .field("time_unit_ns", unit_ns)
      .end_object();
  return text;
}

// The background capture. Created by the start request (control thread), owned by the writer
// from then on; `mu` guards `stop_reason`, `running` and the last result.
struct Session {
  char id[96]{};
  char path[kPathMax]{};
  int64_t start_mono = 0, start_real = 0, deadline = 0;
  double duration_s = 0;
  uint64_t max_bytes = 0;
  uint32_t epoch = 0;
  Stats stats;
  CaptureFile file;
  EventMerge merge;
  uint64_t written_before = 0;  // events stamped before this (ticks) are written
  uint64_t margin_ticks = 0;
  int64_t collected_at = 0;     // monotonic ns of the last collection
  size_t modules_done = 0;
  const char* stop_reason = nullptr;  // requested: "stopped" or "exit"
};

struct Result {
  char id[96]{};
  char path[kPathMax]{};
  uint64_t events = 0, bytes = 0, dropped = 0, waited = 0;
  const char* reason = "";
  uint64_t serial = 0;
};

struct Profiler {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t done = PTHREAD_COND_INITIALIZER;
  Session* session = nullptr;  // the running background capture
  Result last;
  uint32_t epochs = 0;
  bool writer_running = false;
  std::atomic<int> scopes_in_flight{0};
  std::atomic<uint64_t> scope_serial{0};
};
constinit Profiler g_prof;

void lock() { pthread_mutex_lock(&g_prof.mu); }
void unlock() { pthread_mutex_unlock(&g_prof.mu); }

// Refreshes the module map and writes the modules from index `from` on, under the control
// state's mutex; returns the new count.
size_t write_modules_since(CaptureFile& f, size_t from) {
  pthread_mutex_lock(&g_cold.mutex);
  size_t n = from;
  try {
    refresh_modules();
    n = f.modules_from(from);
  } catch (...) {
  }
  pthread_mutex_unlock(&g_cold.mutex);
  return n;
}

// The next epoch: never 0 (no capture) or kHanded. Called with mu held.
uint32_t next_epoch() {
  do ++g_prof.epochs;
  while (g_prof.epochs == 0 || g_prof.epochs == hot::kHanded);
  return g_prof.epochs;
}

// Every buffer a thread was filling under an epoch other than `current`: after the threads were
// waited for, they will not touch those again.
void take_held_buffers(EventMerge& merge, uint32_t current) {
  hot::CaptureHot& c = hot::g_capture;
  for (uint32_t i = 0; i < c.pool_size; ++i) {
    hot::EventBuffer* b = c.pool[i];
    const uint32_t owner = b->owner_epoch.load(std::memory_order_acquire);
    if (owner == 0 || owner == hot::kHanded || owner == current) continue;
    b->owner_epoch.store(hot::kHanded, std::memory_order_relaxed);
    merge.add(b);
  }
}

// Writes what the threads handed over and, every kCollectEveryNs (sooner when buffers run short),
// collects what they still hold (hot/capture.h), so that everything stamped before the
// collection goes to the file in time order. `final`: the capture's epoch is 0 and the threads
// were waited for; everything goes.
void collect(Session& s, bool final) {
  hot::CaptureHot& c = hot::g_capture;
  s.merge.add_list(hot::capture_take_full());
  const int64_t now = hot::monotonic_ns();
  const bool due = final || now - s.collected_at >= kCollectEveryNs || s.merge.buffers() >= c.pool_size / 4 ||
                   c.waiters.load(std::memory_order_relaxed) != 0;
  uint64_t counters_at = 0;
  hot::Totals totals{};
  MemoryFacts mem{};
  if (due) {
    const uint64_t stamp = hot::capture_ticks();
    totals = hot::read_totals();
    mem = read_memory_facts();
    bool clear = true;
    if (!final) {
      lock();
      s.epoch = next_epoch();
      hot::g_capture.epoch.store(s.epoch, std::memory_order_seq_cst);
      unlock();
      clear = hot::threads_wait_clear(&hot::ThreadState::capturing, kCollectWaitMs);
    }
    if (clear) {  // otherwise a thread is still appending somewhere: the next collection takes it
      s.merge.add_list(hot::capture_take_full());
      take_held_buffers(s.merge, final ? 0 : s.epoch);
      s.written_before = final ? UINT64_MAX : stamp - s.margin_ticks;
      s.collected_at = now;
      counters_at = stamp;
    }
  }
  s.modules_done = write_modules_since(s.file, s.modules_done);
  s.merge.emit_before(s.written_before, [&](uint64_t tid, const hot::Event& e) { s.file.event(tid, e); });
  if (counters_at != 0) {
    const uint64_t heap = totals.alloc_bytes >= totals.free_bytes ? totals.alloc_bytes - totals.free_bytes : 0;
    s.file.counters(counters_at, heap, mem.rss_bytes);
  }
  s.stats.dropped.store(c.dropped.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void finish_session(Session& s, const char* reason, bool truncated) {
  hot::g_capture.epoch.store(0, std::memory_order_seq_cst);
  const bool idle = hot::threads_wait_clear(&hot::ThreadState::capturing, 1000);
  collect(s, true);
  hot::CaptureHot& c = hot::g_capture;
  s.stats.dropped.store(c.dropped.load(), std::memory_order_relaxed);
  s.file.finish(reason, truncated);
  if (idle) {  // otherwise a thread may still write into the pool: leave it allocated
    for (uint32_t i = 0; i < c.pool_size; ++i) heap_free(c.pool[i]);
    heap_free(c.pool);
  }
  c.pool = nullptr;
  c.pool_size = 0;
  lock();
  Result& r = g_prof.last;
  snprintf(r.id, sizeof r.id, "%s", s.id);
  snprintf(r.path, sizeof r.path, "%s", s.path);
  r.events = s.stats.events.load();
  r.bytes = s.stats.bytes.load();
  r.dropped = s.stats.dropped.load();
  r.waited = hot::g_capture.waited.load();
  r.reason = s.file.reason();
  ++r.serial;
  g_prof.session = nullptr;
  pthread_cond_broadcast(&g_prof.done);
  unlock();
  if (s.file.failed()) log(Level::kWarn, "capture %s ended: write error: %s", s.id, strerror(s.file.error()));
  heap_delete(&s);
}

void service_background(Session& s) {
  lock();
  const char* requested = s.stop_reason;
  unlock();
  collect(s, false);
  s.file.check_linked();
  if (requested) finish_session(s, requested, std::strcmp(requested, "exit") == 0);
  else if (s.file.failed() || s.file.full()) finish_session(s, "write_error", true);
  else if (hot::monotonic_ns() >= s.deadline) finish_session(s, "duration", false);
}

void scope_name(const char* name, char* out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; name[i] && n + 1 < cap && n < 48; ++i) {
    const char ch = name[i];
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '-';
    out[n++] = ok ? ch : '_';
  }
  if (n == 0) out[n++] = '_';
  out[n] = '\0';
}

void write_scope(hot::ScopeBuffer& sb) {
  const Config& c = g_cold.config;
  char err[512];
  if (!prepare_output_dir(c.profiling_output_dir, err, sizeof err)) {
    log(Level::kWarn, "scope capture not written: %s", err);
    return;
  }
  char name[64], stamp[32], path[kPathMax], id[128];
  scope_name(sb.name, name, sizeof name);
  utc_stamp(sb.start_real_ns, stamp, sizeof stamp);
  const int len = snprintf(path, sizeof path, "%s/scope_%s_%s_%d_%llu.bin", c.profiling_output_dir, name, stamp,
                           static_cast<int>(g_cold.pid), static_cast<unsigned long long>(sb.serial));
  if (len < 0 || static_cast<size_t>(len) >= sizeof path) {
    log(Level::kWarn, "scope capture not written: the path under %s is too long", c.profiling_output_dir);
    return;
  }
  snprintf(id, sizeof id, "scope_%s_%lld", name, static_cast<long long>(sb.start_real_ns / 1000000000LL));
  Stats stats;
  stats.dropped.store(sb.dropped);
  CaptureFile* f = heap_new<CaptureFile>();
  if (f->open(path, static_cast<uint64_t>(c.max_profile_size_mb) << 20, kScopeTimeUnitNs, &stats, err, sizeof err)) {
    f->set_start(sb.start_mono_ns, tick_clock(false));
    f->json(cap::Record::kHeader, header_json(id, "scope", sb.name, sb.start_real_ns, 0.0,
                                              static_cast<uint64_t>(c.max_profile_size_mb) << 20, kScopeTimeUnitNs));
    write_modules_since(*f, 0);
    for (uint32_t i = 0; i < sb.count; ++i) f->event(sb.tid, sb.events[i]);
    f->finish("scope_end", sb.dropped != 0);
  } else {
    log(Level::kWarn, "scope capture not written: %s", err);
  }
  heap_delete(f);
}

void service_scopes() {
  hot::ScopeBuffer* list = hot::capture_take_scopes();
  while (list) {
    hot::ScopeBuffer* next = list->next;
    try {
      write_scope(*list);
    } catch (...) {
    }
    heap_free(list);
    g_prof.scopes_in_flight.fetch_sub(1, std::memory_order_relaxed);
    list = next;
  }
}

// RSR_PROFILING_CLEANUP_DAYS (0: no automatic cleanup): removes the captures older than that
// from the output directory, by the rule of `rsrmemctl cleanup-profiles` (common/capture_files.h),
// when the directory is one captures would be written to (ours, not group/world-writable).
void cleanup_old_captures() {
  const Config& c = g_cold.config;
  if (c.profiling_cleanup_days <= 0) return;
  OwnedFd dir = open_owned(c.profiling_output_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!dir.valid()) return;
  const int dfd = dir.fd;
  struct stat st{};
  DIR* d = fstat(dfd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 022) == 0 ? fdopendir(dfd) : nullptr;
  if (!d) {
    release(dir);
    return;
  }
  const time_t now = time(nullptr);
  const double cutoff = static_cast<double>(now) - static_cast<double>(c.profiling_cleanup_days) * 86400.0;
  int removed = 0;
  uint64_t bytes = 0;
  while (dirent* e = readdir(d)) {
    if (!still_ours(dir)) break;  // the program closed it: what is under that number is not ours
    if (cap::capture_file_expired(dfd, e->d_name, cutoff, now, &st) && unlinkat(dfd, e->d_name, 0) == 0) {
      ++removed;
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  if (still_ours(dir)) closedir(d);  // otherwise its buffer is left behind: closing would close theirs
  if (removed)
    log(Level::kInfo, "removed %d capture file(s), %llu bytes, older than %d days from %s", removed,
        static_cast<unsigned long long>(bytes), static_cast<int>(c.profiling_cleanup_days), c.profiling_output_dir);
}

void* writer_main(void*) {
  hot::guard_enter();
  // Named by itself: naming another thread opens a /proc file, a descriptor the program's
  // close-all could take over.
  pthread_setname_np(pthread_self(), "rsrmem-prof");
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  constexpr int64_t kCleanupEveryNs = 3600LL * 1000000000LL;
  int64_t next_cleanup = 0;
  for (;;) {
    if (hot::monotonic_ns() >= next_cleanup) {
      cleanup_old_captures();
      next_cleanup = hot::monotonic_ns() + kCleanupEveryNs;
    }
    lock();
    Session* s = g_prof.session;
    unlock();
    int timeout = 200;
    if (s) {
      const int64_t left_ms = (s->deadline - hot::monotonic_ns()) / 1000000;
      timeout = left_ms < 50 ? static_cast<int>(left_ms < 1 ? 1 : left_ms) : 50;
    }
    hot::capture_writer_sleep(timeout);
    lock();
    s = g_prof.session;
    unlock();
    try {
      if (s) service_background(*s);
      service_scopes();
    } catch (...) {  // out of private heap: try again at the next turn
    }
  }
  return nullptr;
}

Session* find_session(std::string_view id) {
  Session* s = g_prof.session;
  return s && id == s->id ? s : nullptr;
}

void write_profiler(Writer& w, const Session& s) {
  w.begin_object()
      .field("id", s.id)
      .field("kind", "background")
      .field("path", s.path)
      .field("started_at", static_cast<double>(s.start_real) / 1e9)
      .field("duration_s", s.duration_s)
      .field("elapsed_s", static_cast<double>(hot::monotonic_ns() - s.start_mono) / 1e9)
      .field("events", s.stats.events.load())
      .field("bytes", s.stats.bytes.load())
      .field("dropped_events", hot::g_capture.dropped.load())
      .field("waited_events", hot::g_capture.waited.load())
      .end_object();
}

bool valid_id(std::string_view id) {
  std::string_view rest;
  if (id.rfind("background_", 0) == 0) rest = id.substr(11);
  else if (id.rfind("scope_", 0) == 0) rest = id.substr(6);
  else return false;
  if (rest.empty() || rest.size() > 80) return false;
  for (char ch : rest) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '-';
    if (!ok) return false;
  }
  return true;
}

// Waits until the last result's serial passes `serial`, at most `ms`. Called with mu held.
bool wait_result(uint64_t serial, int ms) {
  timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += static_cast<long>(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    ++until.tv_sec;
    until.tv_nsec -= 1000000000L;
  }
  while (g_prof.last.serial == serial) {
    if (pthread_cond_timedwait(&g_prof.done, &g_prof.mu, &until) == ETIMEDOUT) break;
  }
  return g_prof.last.serial != serial;
}

uint64_t next_random(uint64_t& x) {
  if (x == 0) x = static_cast<uint64_t>(hot::monotonic_ns()) ^ (static_cast<uint64_t>(hot::capture_tid()) << 32) ^ 0x9E3779B97F4A7C15ULL;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

}  // namespace

void profiling_start_writer() {
  if (!g_cold.config.profiling_enabled) return;
  hot::capture_clock_init();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t tid;
  g_prof.writer_running = pthread_create(&tid, &attr, writer_main, nullptr) == 0;
  pthread_attr_destroy(&attr);
  if (!g_prof.writer_running) log(Level::kWarn, "profiling writer thread did not start: profiling is unavailable");
  hot::g_capture.scopes_on.store(g_prof.writer_running && g_cold.config.profiling_request_probability > 0,
                                 std::memory_order_relaxed);
}

void profiling_fork_child() {
  hot::CaptureHot& c = hot::g_capture;
  c.epoch.store(0);
  c.full.store(nullptr);
  c.scopes_done.store(nullptr);
  c.pool = nullptr;
  c.pool_size = 0;
  c.scopes_on.store(false);
  hot::t_capture.buffer = nullptr;
  hot::t_capture.scope = nullptr;
  hot::t_capture.tid = 0;
  pthread_mutex_init(&g_prof.mu, nullptr);
  pthread_cond_init(&g_prof.done, nullptr);
  // The parent's capture belongs to the parent: forget it (its file descriptor is closed here).
  // The memory stays, unreferenced: freeing it could touch state of threads that do not exist.
  if (Session* s = g_prof.session) s->file.abandon();
  g_prof.session = nullptr;
  g_prof.scopes_in_flight.store(0);
  profiling_start_writer();
}

void profiling_at_exit() {
  if (!g_prof.writer_running) return;
  lock();
  Session* s = g_prof.session;
  if (s && !s->stop_reason) s->stop_reason = "exit";
  const uint64_t serial = g_prof.last.serial;
  if (s) {
    hot::capture_wake_writer();
    wait_result(serial, kExitWaitMs);
  }
  unlock();
}

bool profiling_start(double duration_s, Writer& w, char* err, size_t cap) {
  const Config& c = g_cold.config;
  if (!c.profiling_enabled) {
    snprintf(err, cap, "profiling is disabled (RSR_PROFILING_ENABLED=false)");
    return false;
  }
  if (!g_prof.writer_running) {
    snprintf(err, cap, "profiling is unavailable: its writer thread did not start");
    return false;
  }
  if (!(duration_s > 0) || duration_s > 7 * 86400) {
    snprintf(err, cap, "bad argument: \"duration_s\" must be a number of seconds above 0 and at most 604800 (7 days)");
    return false;
  }
  lock();
  if (Session* running = g_prof.session) {
    snprintf(err, cap, "a profiling capture is already running (%s)", running->id);
    unlock();
    return false;
  }
  unlock();
  if (!prepare_output_dir(c.profiling_output_dir, err, cap)) return false;
  Session* s = heap_new<Session>();
  s->start_real = real_ns();
  s->start_mono = hot::monotonic_ns();
  s->duration_s = duration_s;
  s->deadline = s->start_mono + static_cast<int64_t>(duration_s * 1e9);
  s->max_bytes = static_cast<uint64_t>(c.max_profile_size_mb) << 20;
  char stamp[32];
  utc_stamp(s->start_real, stamp, sizeof stamp);
  // A capture started in the same second as an earlier one of this process gets "_2", "_3"...
  const long long epoch = static_cast<long long>(s->start_real / 1000000000LL);
  for (int n = 1;; ++n) {
    char suffix[16] = "";
    if (n > 1) snprintf(suffix, sizeof suffix, "_%d", n);
    snprintf(s->id, sizeof s->id, "background_%lld%s", epoch, suffix);
    const int len = snprintf(s->path, sizeof s->path, "%s/profile_%s_%d%s.bin", c.profiling_output_dir, stamp,
                             static_cast<int>(g_cold.pid), suffix);
    if (len < 0 || static_cast<size_t>(len) + 5 >= sizeof s->path) {
      heap_delete(s);
      snprintf(err, cap, "profiling output directory %s is unusable: %s", c.profiling_output_dir,
               strerror(ENAMETOOLONG));
      return false;
    }
    char part[kPathMax + 8];
    snprintf(part, sizeof part, "%s.part", s->path);
    struct stat st{};
    if ((lstat(s->path, &st) != 0 && lstat(part, &st) != 0) || n == 100) break;
  }
  // The pool, before the file: nothing to undo on disk when memory is short.
  auto** pool = static_cast<hot::EventBuffer**>(heap_alloc(kPoolBuffers * sizeof(hot::EventBuffer*)));
  uint32_t made = 0;
  if (pool) {
    for (; made < kPoolBuffers; ++made) {
      void* p = heap_alloc(sizeof(hot::EventBuffer));
      if (!p) break;
      pool[made] = new (p) hot::EventBuffer;  // events left untouched: pages become resident as used
    }
  }
  const auto free_pool = [&] {
    for (uint32_t i = 0; i < made; ++i) heap_free(pool[i]);
    heap_free(pool);
  };
  if (made < kPoolBuffers) {
    free_pool();
    heap_delete(s);
    snprintf(err, cap, "out of memory for the capture's buffers");
    return false;
  }
  if (!s->file.open(s->path, s->max_bytes, kTimeUnitNs, &s->stats, err, cap)) {
    free_pool();
    heap_delete(s);
    return false;
  }
  const TickClock clock = tick_clock(true);
  s->file.set_start(s->start_mono, clock);
  s->margin_ticks =
      static_cast<uint64_t>(static_cast<double>(kCollectMarginNs) / (clock.identity ? 1.0 : clock.ns_per_tick));
  hot::g_capture.handover_ticks.store(
      static_cast<uint64_t>(static_cast<double>(kHandoverAgeNs) / (clock.identity ? 1.0 : clock.ns_per_tick)),
      std::memory_order_relaxed);
  s->file.json(cap::Record::kHeader, header_json(s->id, "background", nullptr, s->start_real, duration_s, s->max_bytes,
                                                      kTimeUnitNs));
  refresh_modules();
  s->modules_done = s->file.modules_from(0);
  s->file.flush();
  if (s->file.failed()) {
    snprintf(err, cap, "cannot write %s.part: %s", s->path, strerror(s->file.error()));
    s->file.finish("write_error", true);
    free_pool();
    heap_delete(s);
    return false;
  }
  hot::capture_pool_reset(pool, kPoolBuffers);
  hot::g_capture.drop_when_full.store(g_cold.config.profiling_drop_events, std::memory_order_relaxed);
  lock();
  s->epoch = next_epoch();
  g_prof.session = s;
  hot::g_capture.epoch.store(s->epoch, std::memory_order_seq_cst);
  unlock();
  hot::threads_capture_started();
  hot::capture_wake_writer();
  w.field("id", s->id).field("path", s->path).field("duration_s", duration_s).field("max_bytes", s->max_bytes);
  return true;
}

bool profiling_stop(std::string_view id, bool has_id, Writer& w, char* err, size_t cap) {
  if (!has_id) {
    write_profilers(w);
    return true;
  }
  if (!valid_id(id)) {
    snprintf(err, cap, "invalid profile id");
    return false;
  }
  lock();
  Session* s = find_session(id);
  if (!s) {
    unlock();
    snprintf(err, cap, "no active profiling capture '%.*s'", static_cast<int>(id.size()), id.data());
    return false;
  }
  if (!s->stop_reason) s->stop_reason = "stopped";
  const uint64_t serial = g_prof.last.serial;
  unlock();
  hot::capture_wake_writer();
  // The writer takes g_cold.mutex to look at the module map: let it while we wait.
  pthread_mutex_unlock(&g_cold.mutex);
  lock();
  const bool done = wait_result(serial, kStopWaitMs);
  const Result r = g_prof.last;
  unlock();
  pthread_mutex_lock(&g_cold.mutex);
  if (!done) {
    snprintf(err, cap, "profiling capture '%.*s' did not finish within %d s", static_cast<int>(id.size()), id.data(),
             kStopWaitMs / 1000);
    return false;
  }
  w.key("stopped").begin_object()
      .field("id", r.id)
      .field("path", r.path)
      .field("events", r.events)
      .field("bytes", r.bytes)
      .field("dropped_events", r.dropped)
      .field("waited_events", r.waited)
      .field("reason", r.reason)
      .end_object();
  return true;
}

void write_profilers(Writer& w) {
  w.key("profilers").begin_array();
  lock();
  if (const Session* s = g_prof.session) write_profiler(w, *s);
  unlock();
  w.end_array();
}

int profiling_active() {
  lock();
  const int n = g_prof.session ? 1 : 0;
  unlock();
  return n;
}

void profiling_scope_begin(const char* name, uint64_t token) {
  hot::CaptureTls& tls = hot::t_capture;
  if (tls.scope || !hot::g_capture.scopes_on.load(std::memory_order_relaxed)) return;
  const double p = g_cold.config.profiling_request_probability;
  if (p < 1.0 && static_cast<double>(next_random(tls.rng) >> 11) * 0x1.0p-53 >= p) return;
  if (g_prof.scopes_in_flight.fetch_add(1, std::memory_order_relaxed) >= kMaxScopesInFlight) {
    g_prof.scopes_in_flight.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  hot::GuardScope guard;
  void* mem = heap_alloc(sizeof(hot::ScopeBuffer) + (kScopeEvents - 1) * sizeof(hot::Event));
  if (!mem) {
    g_prof.scopes_in_flight.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  auto* s = static_cast<hot::ScopeBuffer*>(mem);
  s->next = nullptr;
  s->tid = hot::capture_tid();
  s->token = token;
  s->serial = g_prof.scope_serial.fetch_add(1, std::memory_order_relaxed) + 1;
  s->start_mono_ns = hot::monotonic_ns();
  s->start_real_ns = real_ns();
  s->dropped = 0;
  s->count = 0;
  s->capacity = kScopeEvents;
  snprintf(s->name, sizeof s->name, "%s", name ? name : "unknown");
  tls.scope = s;  // the guard's end recomputes this thread's gate
}

void profiling_scope_end(uint64_t token) {
  hot::CaptureTls& tls = hot::t_capture;
  hot::ScopeBuffer* s = tls.scope;
  if (!s) return;
  if ((token & 15) > (s->token & 15)) return;  // an inner scope ended
  tls.scope = nullptr;
  hot::refresh_fast();
  hot::capture_push_scope(s);
}

}  // namespace rsr::cold
