// Turns raw return addresses from a monitored process into functions, source lines and inlined
// frames, with elfutils libdw. This runs in rsrmemctl only: the service hands over addresses and
// its module map and never pays for symbolization.
//
// For each module the symbolizer opens the file named in the map (falling back to the process's
// own view of it under /proc/<pid>/root, then to /usr/lib/debug/.build-id/xx/yyyy.debug), checks
// its build-id against the one the process reported, and finds separate debug info the standard
// way (.gnu_debuglink, build-id directories under /usr/lib/debug). A file whose build-id differs
// is not used: its symbols would be wrong, so the frame says "build-id mismatch" instead.
//
// Module maps come from capture files and replies, so they are untrusted: only regular ELF
// files are opened, without blocking, and libdw is never left to open a name by itself
// (module_files.h). A path naming a FIFO, a device or a directory leaves its frames unresolved,
// with the reason in problems(). At most 8192 modules are used; lookups are binary searches.
//
// Resolution per address, best first: DWARF (function, file:line, inlined frames), then the ELF
// symbol tables (function only), then "module+0xoffset", then the bare address.
//
// Not thread-safe: one Symbolizer per report. Results are cached per address (the module map is
// fixed for the Symbolizer's lifetime, so an address names one module).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rsr::ctl {

struct ModuleInfo {
  std::string path;
  std::string build_id;  // lowercase hex; empty when unknown
  uint64_t base = 0;     // load bias: run-time address minus the ELF file's virtual address
  uint64_t start = 0;    // [start, end) holds the module's mapped segments
  uint64_t end = 0;
  bool loaded = true;  // false: unloaded since (dlclose); still used for older samples
};

// One inlined call inside a frame.
struct InlinedFrame {
  std::string function;
  std::string file;
  int line = 0;
};

struct SymbolizedFrame {
  uint64_t address = 0;        // as captured (a return address)
  std::string function;        // demangled; empty when nothing resolved
  std::string file;            // source path as recorded in DWARF; empty when unknown
  int line = 0;                // 0 when unknown
  std::string module;          // module path; empty when no module holds the address
  uint64_t module_offset = 0;  // address - load bias: the file's own address, for addr2line
  // Functions inlined at this address, innermost first. `function`/`file`/`line` above are then
  // the out-of-line function that contains them and the line of the outermost inlined call in it;
  // each entry's file:line is the line executing inside that inlined function.
  std::vector<InlinedFrame> inlined;
  std::string note;  // why resolution was partial, e.g. "build-id mismatch"

  // The function, else "module_basename+0xoffset", else "0xaddress".
  std::string display_name() const;
};

class Symbolizer {
 public:
  // `pid` (optional) lets the symbolizer read modules through /proc/<pid>/root when the path
  // does not name the same file in our mount namespace (containers, upgraded packages).
  explicit Symbolizer(std::vector<ModuleInfo> modules, std::optional<pid_t> pid = std::nullopt);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Symbolizes a return address: the lookup uses address - 1, the call instruction, so the line
  // is the call's and not the next statement's.
  const SymbolizedFrame& symbolize(uint64_t return_address);

  // Modules that could not be used, with the reason ("path: build-id mismatch"), for a report
  // footer. Filled as modules are first used.
  std::vector<std::string> problems() const;

  // The bytes the resolved frames may take (names of C++ functions run to kilobytes); past them
  // new addresses are left unresolved ("module+0xoffset") and problems() says how many. 128 MiB
  // unless told otherwise: a reply or a capture is untrusted, and so is how many distinct
  // addresses it holds.
  void limit_memory(uint64_t bytes) { memory_limit_ = bytes; }
  uint64_t held_bytes() const { return held_bytes_; }

 private:
  struct Module;
  void build_segments();
  Module* module_for(uint64_t address);
  void open(Module* m);
  SymbolizedFrame resolve(uint64_t return_address);

  std::vector<std::unique_ptr<Module>> modules_;
  size_t ignored_modules_ = 0;  // beyond the cap
  // Where each module's addresses begin, sorted; nullptr where no module is.
  std::vector<std::pair<uint64_t, Module*>> segments_;
  std::optional<pid_t> pid_;
  std::unordered_map<uint64_t, SymbolizedFrame> cache_;
  uint64_t memory_limit_ = uint64_t{128} << 20;
  uint64_t held_bytes_ = 0;
  uint64_t over_limit_ = 0;  // addresses left unresolved for want of memory
};

// What a resolved frame takes in memory, its strings and a cache entry included (an estimate).
uint64_t frame_bytes(const SymbolizedFrame& f);

// "_ZN3foo3barEv" -> "foo::bar()"; anything that does not demangle is returned unchanged.
std::string demangle(const char* name);

}  // namespace rsr::ctl
