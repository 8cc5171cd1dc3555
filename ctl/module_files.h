// The files behind a module, found and opened for the symbolizer without trusting any name.
//
// Module paths come from capture files and replies, debug file names from inside ELF files
// (.gnu_debuglink, .gnu_debugaltlink) and build-ids from both: any of them may name a FIFO, a
// device or a directory. Every file here is opened by open_elf(): non-blocking, checked on the
// descriptor to be a regular file, and to start with the ELF magic (so libdwfl never tries to
// decompress it), and libdwfl only ever gets descriptors opened that way:
//
// - the module itself is reported with dwfl_report_elf() and such a descriptor (libdwfl would
//   otherwise open the path itself, blocking on a FIFO);
// - separate debug files are found by find_debuginfo() below instead of libdwfl's standard
//   search, in the same places (/usr/lib/debug/.build-id, the .gnu_debuglink name beside the
//   module, in .debug/ and under /usr/lib/debug; a dwz file by its .gnu_debugaltlink name,
//   beside, in .dwz/ and under /usr/lib/debug/.dwz), each checked by build-id (or CRC);
// - libdw opens a dwz file by itself, later, when it was not found here. If a place it would
//   look holds something that is not a regular file, the module's DWARF is marked unsafe
//   (DebugSearch::unsafe) and the symbolizer uses only its symbol table.
//
// The search never asks debuginfod (no network from a report). Not thread-safe per module.
#pragma once

#include <elfutils/libdwfl.h>

#include <optional>
#include <string>
#include <vector>

#include "regular_file.h"

namespace rsr::ctl {

struct ModuleInfo;

// True for a build-id as a reply or capture should carry it: lowercase hex, 2 to 64 bytes.
bool valid_build_id(const std::string& id);

// A reported module's build-id in lowercase hex; "" when it has none.
std::string module_build_id(Dwfl_Module* mod);

// Opens `path` if it is a regular ELF file; otherwise !fd, and `why` says what it is ("not a
// regular file (a FIFO)", "not an ELF file", "Permission denied").
struct OpenedElf {
  UniqueFd fd;
  std::string why;
  bool missing = false;    // nothing there
  bool irregular = false;  // there, but not a regular file
};
OpenedElf open_elf(const std::string& path);

// Files that may hold a module, best first: its path (without a " (deleted)" mark), the
// process's view of it under /proc/<pid>/root (or /proc/<pid>/cwd for a relative name), and
// /usr/lib/debug/.build-id/xx/yyyy.debug when the build-id is valid. Each is checked against the
// build-id before use.
std::vector<std::string> module_candidates(const ModuleInfo& info, std::optional<pid_t> pid);

// One module's debug file search: set as the module's userdata (dwfl_module_info), read by
// find_debuginfo().
struct DebugSearch {
  bool unsafe = false;      // libdw could open something that is not a regular file
  std::string unsafe_why;   // "/x/alt.debug: not a regular file (a FIFO)"
};

// The libdwfl callbacks every Dwfl of the symbolizer uses.
extern const Dwfl_Callbacks kModuleCallbacks;

}  // namespace rsr::ctl
