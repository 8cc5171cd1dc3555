// rsrmem settings: one table, read from the environment by the preload and by rsrmemctl.
//
// Every setting is listed once in RSR_SETTINGS below with its type, default, bounds and meaning;
// the Config struct, the parser, `rsrmemctl status` and scripts/env.template all follow from it.
// A bad value is reported once through the warning callback (name, value, what was used instead)
// and the default is used; parsing never fails.
//
// Nothing here allocates: the preload parses its configuration before anything else is ready.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rsr {

inline constexpr size_t kPathMax = 4096;
inline constexpr size_t kNameMax = 128;

// X(kind, field, ENV_NAME, default, min, max, help)
//   kind: Bool, Int (int64 within [min,max]), Real (double within [min,max]), Str (text up to
//   kNameMax), Path (text up to kPathMax). An empty default string means "derived at run time".
#define RSR_SETTINGS(X)                                                                            \
  X(Bool, memory_monitoring_enabled, "RSR_MEMORY_MONITORING_ENABLED", true, 0, 0,                  \
    "Master switch. false: the library passes every call straight through and opens no socket.")   \
  X(Bool, prometheus_metrics_enabled, "RSR_PROMETHEUS_METRICS_ENABLED", true, 0, 0,                \
    "Expose Prometheus metrics (rsrmemctl metrics / serve / push).")                               \
  X(Bool, leak_detection_enabled, "RSR_LEAK_DETECTION_ENABLED", true, 0, 0,                        \
    "Run leak detection in the background every RSR_LEAK_CHECK_INTERVAL seconds.")                 \
  X(Int, leak_check_interval, "RSR_LEAK_CHECK_INTERVAL", 300, 1, 86400,                            \
    "Seconds between background leak checks.")                                                     \
  X(Real, leak_growth_threshold, "RSR_LEAK_GROWTH_THRESHOLD", 0.2, 0.0, 1000.0,                    \
    "Relative live-heap growth over the window that counts as memory_growth (0.2 = 20%).")         \
  X(Int, leak_memory_threshold_mb, "RSR_LEAK_MEMORY_THRESHOLD_MB", 100, 1, 16777216,               \
    "RSS in MiB above which high_memory is reported.")                                             \
  X(Real, leak_model_growth_threshold, "RSR_LEAK_MODEL_GROWTH_THRESHOLD", 1.0, 0.0, 1000.0,        \
    "Relative growth of one call site's live bytes that counts as site_growth (1.0 = 100%).")      \
  X(Int, leak_min_site_bytes, "RSR_LEAK_MIN_SITE_BYTES", 1048576, 1, 1099511627776,               \
    "Smallest growth (and size) in bytes for which a call site or the heap is judged (K/M/G ok).")  \
  X(Bool, memory_detailed_tracking, "RSR_MEMORY_DETAILED_TRACKING", false, 0, 0,                   \
    "Sample every allocation with its stack (development only: costs time and memory).")           \
  X(Str, memory_header_prefix, "RSR_MEMORY_HEADER_PREFIX", "X-RSR-Memory", 0, 0,                   \
    "Prefix of the memory headers a service emits through the C API.")                             \
  X(Int, memory_metrics_update_interval, "RSR_MEMORY_METRICS_UPDATE_INTERVAL", 300, 1, 86400,      \
    "Seconds between refreshes of the per-site gauges and growth rates.")                          \
  X(Bool, profiling_enabled, "RSR_PROFILING_ENABLED", false, 0, 0,                                 \
    "Allow profiling captures (start-profiling and scope profiling).")                             \
  X(Path, profiling_output_dir, "RSR_PROFILING_OUTPUT_DIR", "/tmp/rsr_memory_profiles", 0, 0,      \
    "Directory that receives capture files (created 0700).")                                       \
  X(Int, max_profile_size_mb, "RSR_MAX_PROFILE_SIZE_MB", 100, 1, 1048576,                          \
    "Size at which a capture stops itself and is marked truncated, in MiB.")                       \
  X(Bool, profiling_drop_events, "RSR_PROFILING_DROP_EVENTS", false, 0, 0,                         \
    "When a capture's writer falls behind, drop events (counted) instead of making the allocating " \
    "thread wait for it (while it makes progress; stuck for 1 s: drop).")                            \
  X(Int, profiling_cleanup_days, "RSR_PROFILING_CLEANUP_DAYS", 7, 0, 36500,                        \
    "Age in days after which cleanup-profiles removes captures.")                                  \
  X(Real, profiling_request_probability, "RSR_PROFILING_REQUEST_PROBABILITY", 0.01, 0.0, 1.0,      \
    "Probability that a scope (request) marked through the C API is captured.")                    \
  X(Bool, cache_metrics_enabled, "RSR_CACHE_METRICS_ENABLED", true, 0, 0,                          \
    "Record cache hits and misses reported through the C API.")                                    \
  X(Int, cache_metrics_update_frequency, "RSR_CACHE_METRICS_UPDATE_FREQUENCY", 60, 1, 86400,       \
    "Seconds between publications of the cache hit and miss counts.")                             \
  X(Int, sample_interval_bytes, "RSR_SAMPLE_INTERVAL_BYTES", 524288, 1, 1099511627776,             \
    "Mean bytes between sampled allocations (exponentially distributed intervals).")               \
  X(Int, stack_depth, "RSR_STACK_DEPTH", 64, 1, 256, "Frames captured per sampled allocation.")    \
  X(Path, socket_dir, "RSR_SOCKET_DIR", "", 0, 0,                                                  \
    "Directory of control sockets (default $XDG_RUNTIME_DIR/rsrmem, else /tmp/rsrmem-<uid>).")     \
  X(Bool, follow_children, "RSR_FOLLOW_CHILDREN", true, 0, 0,                                      \
    "Keep monitoring programs this one executes (false: drop the library from their LD_PRELOAD).") \
  X(Str, service_name, "RSR_SERVICE_NAME", "", 0, 0,                                               \
    "Service name, the job label of every metric (default: the program name).")                    \
  X(Int, metrics_top_sites, "RSR_METRICS_TOP_SITES", 20, 1, 1000,                                  \
    "Call sites reported with a site label in metrics and summaries.")                             \
  X(Path, allocator_wrappers, "RSR_ALLOCATOR_WRAPPERS", "", 0, 0,                                 \
    "Comma-separated allocation wrappers (a trailing * matches a prefix) passed over when naming "  \
    "a call site, beside the built-in ones (zmalloc, xmalloc, g_malloc, sqlite3Malloc, ...).")      \
  X(Str, allowed_uids, "RSR_ALLOWED_UIDS", "", 0, 0,                                               \
    "Comma-separated extra uids allowed on the control socket (the owner and root always are).")   \
  X(Int, max_sites, "RSR_MAX_SITES", 16384, 64, 1048576,                                           \
    "Most distinct call sites kept; samples of further sites are counted as dropped.")             \
  X(Int, max_tracked_blocks, "RSR_MAX_TRACKED_BLOCKS", 32768, 1024, 67108864,                      \
    "Most sampled live blocks kept (detailed tracking: 32x this); further samples are dropped.")     \
  X(Str, log_level, "RSR_LOG_LEVEL", "warn", 0, 0, "Library log level on stderr: error, warn, info.")

// The paths (4 KiB each) come after every other field: a process that sets none of them writes
// one page or two of its settings at start-up, not one for each path.
struct Config {
#define RSR_FIELD_Bool(f) bool f;
#define RSR_FIELD_Int(f) int64_t f;
#define RSR_FIELD_Real(f) double f;
#define RSR_FIELD_Str(f) char f[kNameMax];
#define RSR_FIELD_Path(f)
#define RSR_FIELD(kind, f, env, def, lo, hi, help) RSR_FIELD_##kind(f)
  RSR_SETTINGS(RSR_FIELD)
#undef RSR_FIELD_Path
#define RSR_PATH_Bool(f)
#define RSR_PATH_Int(f)
#define RSR_PATH_Real(f)
#define RSR_PATH_Str(f)
#define RSR_PATH_Path(f) char f[kPathMax];
#define RSR_PATH(kind, f, env, def, lo, hi, help) RSR_PATH_##kind(f)
  RSR_SETTINGS(RSR_PATH)
#undef RSR_PATH
};

enum class SettingKind { kBool, kInt, kReal, kStr, kPath };

// A row of the table, for listing and templating.
struct SettingInfo {
  SettingKind kind;
  const char* env;
  const char* default_text;
  const char* help;
};

const SettingInfo* settings(size_t* count);

using EnvGetter = const char* (*)(const char* name);
using Warner = void (*)(const char* name, const char* value, const char* used, void* ctx);

// Fills `out` with defaults, then with every valid value `get` returns.
void parse_config(EnvGetter get, Warner warn, void* ctx, Config* out);

// Writes the effective value of setting `env` into `buf` as text. False for an unknown name.
bool format_setting(const Config& c, const char* env, char* buf, size_t cap);

// The control-socket directory, the same rule on both sides: `configured` (RSR_SOCKET_DIR, when
// absolute), else `xdg`/rsrmem (XDG_RUNTIME_DIR, when absolute), else /tmp/rsrmem-<uid>. Trailing
// slashes are dropped. Either input may be null.
void socket_dir_for(const char* configured, const char* xdg, unsigned uid, char* out, size_t cap);

// Parses a boolean the way every rsrmem setting does (true/false, 1/0, yes/no, on/off).
bool parse_bool(const char* text, bool* out);

}  // namespace rsr
