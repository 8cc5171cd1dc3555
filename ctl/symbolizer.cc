#include "symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "dwarf_scopes.h"
#include "format.h"
#include "module_files.h"
#include "symbol_index.h"

namespace rsr::ctl {
namespace {

// More than a process maps (a few hundred, a few thousand with plugins); the segment table
// below is built in n log n, and every module is opened at most once.
constexpr size_t kMaxModules = 8192;
// Problems listed by problems(); the rest are counted in one line.
constexpr size_t kMaxProblems = 20;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Where an inlined subroutine was called from: its DW_AT_call_file / DW_AT_call_line, the file
// being an index into its compilation unit's file table.
void call_site(Dwarf_Die* inlined, std::string* file, int* line) {
  Dwarf_Attribute attr;
  Dwarf_Word value = 0;
  *file = "";
  *line = 0;
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &value) == 0)
    *line = static_cast<int>(value);
  if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &value) != 0) return;
  Dwarf_Die cu;
  Dwarf_Files* files = nullptr;
  size_t nfiles = 0;
  if (!dwarf_diecu(inlined, &cu, nullptr, nullptr)) return;
  if (dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 || value >= nfiles) return;
  if (const char* src = dwarf_filesrc(files, value, nullptr, nullptr)) *file = src;
}

// Adds file:line and inlined frames from DWARF, when the module has it for `pc`.
void add_dwarf(Dwfl_Module* mod, ScopeIndex& index, Dwarf_Addr pc, SymbolizedFrame* f) {
  Dwarf_Addr bias = 0;
  Dwarf_Die* cudie = dwfl_module_addrdie(mod, pc, &bias);
  // libdwfl answers with the nearest compilation unit below `pc` even when `pc` lies past its
  // end: code without DWARF (crt1's _start, right after main's unit in .text.startup) would get
  // the last line of that unit (std_thread.h:150 for _start). Only a unit that holds `pc` counts.
  if (!cudie || dwarf_haspc(cudie, pc - bias) <= 0) return;
  std::string file;
  int line = 0;
  if (Dwfl_Line* l = dwfl_module_getsrc(mod, pc)) {
    if (const char* src = dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr)) file = src;
  }
  for (Dwarf_Die& die : index.scopes(cudie, pc - bias)) {
    if (dwarf_tag(&die) == DW_TAG_inlined_subroutine) {
      std::string name = index.function_name(&die);
      // GCC may nest an inlined instance of a function directly in another of the same function
      // (std::_Vector_base::_M_allocate in _M_default_append): one call, one frame, at the inner
      // instance's line.
      if (f->inlined.empty() || f->inlined.back().function != name) f->inlined.push_back({std::move(name), file, line});
      call_site(&die, &file, &line);
    } else if (f->function.empty()) {
      f->function = index.function_name(&die);
    }
  }
  f->file = file;
  f->line = line;
}

}  // namespace

struct Symbolizer::Module {
  ModuleInfo info;
  bool attempted = false;
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  bool use_dwarf = true;  // false: the symbol table only (DebugSearch::unsafe)
  DebugSearch search;     // the module's userdata in libdwfl: outlives `dwfl`
  ScopeIndex scopes;
  std::unique_ptr<SymbolIndex> symbols;  // built at the first address
  std::string note;       // short, for frames: "build-id mismatch"
  std::string problem;    // long, for the report footer
  ~Module() {
    if (dwfl) dwfl_end(dwfl);
  }
};

std::string demangle(const char* name) {
  if (!name) return "";
  if (name[0] == '_' && name[1] == 'Z') {
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out) {
      std::string s(out);
      std::free(out);
      return s;
    }
    std::free(out);
  }
  return name;
}

uint64_t frame_bytes(const SymbolizedFrame& f) {
  uint64_t n = sizeof(SymbolizedFrame) + 64 + f.function.capacity() + f.file.capacity() +
               f.module.capacity() + f.note.capacity();
  for (const InlinedFrame& i : f.inlined)
    n += sizeof(InlinedFrame) + i.function.capacity() + i.file.capacity();
  return n;
}

std::string SymbolizedFrame::display_name() const {
  if (!function.empty()) return function;
  if (!module.empty()) return base_name(module) + "+" + hex(module_offset);
  return hex(address);
}

Symbolizer::Symbolizer(std::vector<ModuleInfo> modules, std::optional<pid_t> pid) : pid_(pid) {
  if (modules.size() > kMaxModules) {
    ignored_modules_ = modules.size() - kMaxModules;
    modules.resize(kMaxModules);
  }
  for (ModuleInfo& m : modules) {
    auto mod = std::make_unique<Module>();
    mod->info = std::move(m);
    modules_.push_back(std::move(mod));
  }
  build_segments();
}

Symbolizer::~Symbolizer() = default;

// Cuts the address space at every module's start and end; each piece gets the module an address
// in it resolves to: the first loaded module holding it in the map's order, else the first
// unloaded one (a module unloaded since may share its range with one loaded later). A sweep over
// the sorted boundaries keeps this n log n, however the ranges overlap.
void Symbolizer::build_segments() {
  std::vector<std::pair<uint64_t, size_t>> starts, ends;
  for (size_t i = 0; i < modules_.size(); ++i) {
    const ModuleInfo& m = modules_[i]->info;
    if (m.start >= m.end) continue;
    starts.emplace_back(m.start, i);
    ends.emplace_back(m.end, i);
  }
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  std::set<size_t> loaded, unloaded;  // the modules holding the current piece, by map order
  size_t si = 0, ei = 0;
  while (si < starts.size() || ei < ends.size()) {
    const uint64_t at = std::min(si < starts.size() ? starts[si].first : UINT64_MAX,
                                 ei < ends.size() ? ends[ei].first : UINT64_MAX);
    for (; ei < ends.size() && ends[ei].first == at; ++ei) {
      loaded.erase(ends[ei].second);
      unloaded.erase(ends[ei].second);
    }
    for (; si < starts.size() && starts[si].first == at; ++si) {
      const size_t i = starts[si].second;
      (modules_[i]->info.loaded ? loaded : unloaded).insert(i);
    }
    Module* chosen = !loaded.empty()     ? modules_[*loaded.begin()].get()
                     : !unloaded.empty() ? modules_[*unloaded.begin()].get()
                                         : nullptr;
    if (segments_.empty() || segments_.back().second != chosen) segments_.emplace_back(at, chosen);
  }
}

Symbolizer::Module* Symbolizer::module_for(uint64_t address) {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), address,
                             [](uint64_t a, const std::pair<uint64_t, Module*>& s) { return a < s.first; });
  return it == segments_.begin() ? nullptr : std::prev(it)->second;
}

namespace {

// Opens `file` (already opened as `fd`) as the module at load bias `base`. On success returns the
// handle and libdwfl owns the descriptor; otherwise sets `why`. A build-id that differs from
// the one the process reported (when known) is a failure.
Dwfl* open_module(const std::string& file, UniqueFd fd, const ModuleInfo& info, DebugSearch* search,
                  Dwfl_Module** out, std::string* why, bool* mismatch) {
  Dwfl* dwfl = dwfl_begin(&kModuleCallbacks);
  if (!dwfl) {
    *why = dwfl_errmsg(-1);
    return nullptr;
  }
  dwfl_report_begin(dwfl);
  // add_p_vaddr = true: `base` is the load bias (dlpi_addr), which is exactly what libdwfl calls
  // the bias in that mode; with false it would subtract the first segment's p_vaddr, which is
  // wrong for the (rare) files linked at a non-zero address.
  Dwfl_Module* mod =
      dwfl_report_elf(dwfl, base_name(info.path).c_str(), file.c_str(), fd.get(), info.base, true);
  if (mod) fd.release();  // the module's now, closed by dwfl_end
  dwfl_report_end(dwfl, nullptr, nullptr);
  if (!mod) {
    *why = file + ": " + dwfl_errmsg(-1);
    dwfl_end(dwfl);
    return nullptr;
  }
  if (!info.build_id.empty()) {
    const std::string found = module_build_id(mod);
    if (found != info.build_id) {
      *mismatch = true;
      *why = file + " has build-id " + (found.empty() ? "(none)" : found) +
             ", the process loaded " + info.build_id;
      dwfl_end(dwfl);
      return nullptr;
    }
  }
  void** userdata = nullptr;
  dwfl_module_info(mod, &userdata, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  *userdata = search;
  *out = mod;
  return dwfl;
}

}  // namespace

void Symbolizer::open(Module* m) {
  m->attempted = true;
  const std::string& path = m->info.path;
  bool mismatch = false;
  for (const std::string& file : module_candidates(m->info, pid_)) {
    OpenedElf elf = open_elf(file);
    if (!elf.fd) {
      if (!elf.missing && m->problem.empty()) m->problem = file + ": " + elf.why;
      continue;
    }
    std::string why;
    m->dwfl = open_module(file, std::move(elf.fd), m->info, &m->search, &m->mod, &why, &mismatch);
    if (m->dwfl) break;
    if (m->problem.empty()) m->problem = why;
  }
  if (!m->dwfl) {
    m->note = mismatch ? "build-id mismatch" : "no readable file";
    if (m->problem.empty())
      m->problem = path.empty() ? "module has no file name" : path + ": no readable file";
    return;
  }
  // Find the debug files now, so that a module whose DWARF libdw would complete by opening
  // something that is not a regular file is known before any DWARF is read.
  Dwarf_Addr bias = 0;
  dwfl_module_getdwarf(m->mod, &bias);
  if (m->search.unsafe) {
    m->use_dwarf = false;
    m->problem = path + ": DWARF not used, it refers to " + m->search.unsafe_why;
  }
}

const SymbolizedFrame& Symbolizer::symbolize(uint64_t return_address) {
  auto it = cache_.find(return_address);
  if (it != cache_.end()) return it->second;
  const SymbolizedFrame& f = cache_.emplace(return_address, resolve(return_address)).first->second;
  held_bytes_ += frame_bytes(f);
  return f;
}

SymbolizedFrame Symbolizer::resolve(uint64_t return_address) {
  SymbolizedFrame f;
  f.address = return_address;
  Module* m = module_for(return_address);
  if (!m) {
    f.note = "no module";
    return f;
  }
  f.module = m->info.path;
  f.module_offset = return_address - m->info.base;
  if (held_bytes_ > memory_limit_) {
    ++over_limit_;
    f.note = "not symbolized (memory limit)";
    return f;
  }
  if (!m->attempted) open(m);
  if (!m->dwfl) {
    f.note = m->note;
    return f;
  }

  // A return address points after the call; the call itself is one byte earlier at least.
  const Dwarf_Addr pc = return_address > 0 ? return_address - 1 : 0;
  if (!m->symbols) m->symbols = std::make_unique<SymbolIndex>(m->mod);
  if (const char* name = m->symbols->name_at(pc)) {
    // Symbol-table names may carry a version ("__libc_start_main@@GLIBC_2.34"): not part of the
    // function's name, and it stops demangling.
    const std::string plain(name, std::strcspn(name, "@"));
    f.function = demangle(plain.c_str());
  }
  if (m->use_dwarf) add_dwarf(m->mod, m->scopes, pc, &f);
  return f;
}

std::vector<std::string> Symbolizer::problems() const {
  std::vector<std::string> out;
  size_t more = 0;
  for (const auto& m : modules_) {
    const bool failed = m->attempted && (!m->dwfl || !m->use_dwarf);
    if (!failed) continue;
    if (out.size() < kMaxProblems)
      out.push_back(m->problem);
    else
      ++more;
  }
  if (more > 0)
    out.push_back("... and " + std::to_string(more) + " more modules could not be used");
  if (ignored_modules_ > 0)
    out.push_back(std::to_string(ignored_modules_) + " modules beyond the first " +
                  std::to_string(kMaxModules) + " were ignored; their frames are unresolved");
  if (over_limit_ > 0)
    out.push_back(std::to_string(over_limit_) + " addresses were not symbolized: the names of the " +
                  "others already took " + human_bytes(static_cast<double>(memory_limit_)) +
                  ", the most allowed here");
  return out;
}

}  // namespace rsr::ctl
