// Call sites as the preload sends them (raw return addresses plus the process's module map),
// symbolized and rendered the same way by every command that shows stacks (memory-summary,
// check-leaks): the module map read from a reply, a site's frames symbolized with the
// library's own frames dropped, a frame as JSON, and the indented text stack.
//
// Plain functions over a caller-owned Symbolizer (one per report, not thread-safe).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "client.h"
#include "profile_model.h"
#include "symbolizer.h"

namespace rsr::ctl {

// A stack of return addresses symbolized, with the frames of librsrmem and of the allocation API
// (malloc, operator new, ...) and allocation wrappers (is_allocator_wrapper: zmalloc, xmalloc,
// ...) dropped from the top: frame #0 is the allocation's caller, or the wrapper's caller.
std::vector<const SymbolizedFrame*> trimmed_stack(const std::vector<uint64_t>& addresses,
                                                  Symbolizer& symbolizer);

// A symbolized stack as reports draw it: inlined calls expanded into frames of their own, and
// the index of the first frame of the service's own code (first_user_frame below).
ProfileStack profile_stack(const std::vector<const SymbolizedFrame*>& frames);

// Each process's symbolizer, kept while the process's module map stays the same, so that the
// commands that ask again and again (serve, push, top) read each module's debug information once.
// Not thread-safe.
class ProcessSymbolizers {
 public:
  // The symbolizer for the reply's process (its "pid", else `pid`) and module map: the one kept
  // when the map is the same as last time, else a new one.
  std::shared_ptr<Symbolizer> get(const Json& reply, pid_t pid);
  // Forgets every process but those in `pids` (the ones a round over the processes answered).
  void keep_only(const std::set<pid_t>& pids);
  // Forgets the processes that no longer exist.
  void forget_gone();

 private:
  struct Kept {
    std::string modules;  // the module map, as JSON text
    std::shared_ptr<Symbolizer> symbolizer;
  };
  std::map<pid_t, Kept> by_pid_;
};

// "0x7f12..." (or a JSON number) -> the address; anything else -> 0.
uint64_t parse_address(const Json& v);

// The reply's "modules" array, as the symbolizer wants it.
std::vector<ModuleInfo> modules_of(const Json& reply);

// A site's "frames" symbolized, innermost first. Frames of librsrmem itself left at the top (an
// older library) are dropped, so frame #0 is the allocation's caller. The pointers live as long
// as the symbolizer.
std::vector<const SymbolizedFrame*> symbolize_site(const Json& site, Symbolizer& symbolizer);

// {"address", "function", "file", "line", "module", "offset", "inlined": [...], "note"?}
Json frame_json(const SymbolizedFrame& f);

// "file.cc:42" from a path and line; "" without a file.
std::string short_location(const std::string& file, int line);

// "       #0 func  file.cc:42  (module)" lines, each followed by its inlined calls (outermost
// first); at most `limit` frames (0: all), then a "... N more frames" line.
void render_frames(std::ostream& out, const std::vector<const SymbolizedFrame*>& frames, int limit);

// ---- Which frame to name ----
//
// A report names a call site by the first frame that is the service's own code: frames of the
// C++ runtime and of the allocator (std::, __gnu_cxx::, operator new, malloc and friends, ...),
// allocation wrappers (below), and frames in system libraries (libc, libstdc++, libgcc, the
// dynamic loader, jemalloc, tcmalloc, mimalloc) are passed over.
// Inlined calls count as frames of their own, innermost first, so a user function inlined into
// another is named rather than its host.

// "void std::vector<int>::_M_realloc_insert<int const&>(...)" -> "std::vector<int>::
// _M_realloc_insert<int const&>": the qualified name without return type or parameters. Text
// that is not a demangled signature ("libfoo.so+0x12", "0x10") is returned unchanged.
std::string qualified_name(const std::string& demangled);

// True for a qualified name of the C++ standard library, the C++ ABI runtime or the allocation
// API (malloc, operator new, strdup, ...).
bool is_runtime_function(const std::string& qualified);

// Allocation wrappers are passed over too: functions that only call the allocator for their
// callers (redis' zmalloc, git's xmalloc, glib's g_malloc, ...), so their caller is named. The
// built-in list, plus the monitored process's RSR_ALLOCATOR_WRAPPERS (comma-separated names, a
// trailing * matching a prefix) as its replies and captures carry it ("allocator_wrappers"):
// set_allocator_wrappers() with that text before naming a process's sites.
bool is_allocator_wrapper(const std::string& qualified);
void set_allocator_wrappers(const std::string& list);

// True for libc, libstdc++, libgcc_s, libc++/libc++abi, the dynamic loader, and librsrmem.
bool is_system_module(const std::string& path);

struct UserFrame {
  bool found = false;     // false: no frames at all
  bool fallback = false;  // no frame is user code: the first frame is named instead
  size_t index = 0;       // the frame's number in the stack
  std::string function;   // qualified_name() of the function, or the frame's display name
  std::string file;       // as in DWARF; "" when unknown
  int line = 0;
  std::string module;  // path; "" when no module holds the address
};
UserFrame first_user_frame(const std::vector<const SymbolizedFrame*>& frames);

// How reports and metric labels name a site by its user frame: "register_session (leaky.cc:42)",
// else the function alone, else the unresolved "module+0xoffset". "" when !found.
std::string user_frame_label(const UserFrame& u);

}  // namespace rsr::ctl
