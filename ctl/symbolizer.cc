#include "symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "format.h"

namespace rsr::ctl {
namespace {

// nullptr: dwfl's default search path (":.debug:/usr/lib/debug", build-id directories included).
char* g_debuginfo_path = nullptr;

const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &g_debuginfo_path,
};

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string hex_bytes(const unsigned char* bits, int n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += kDigits[bits[i] >> 4];
    out += kDigits[bits[i] & 15];
  }
  return out;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Follows abstract_origin / specification links to the DIE that sits in its namespace or class
// (concrete inlined and out-of-line instances live elsewhere in the tree).
Dwarf_Die declaration_of(Dwarf_Die die) {
  for (int hops = 0; hops < 8; ++hops) {
    Dwarf_Attribute attr;
    Dwarf_Die next;
    if (!dwarf_attr(&die, DW_AT_abstract_origin, &attr) &&
        !dwarf_attr(&die, DW_AT_specification, &attr))
      break;
    if (!dwarf_formref_die(&attr, &next)) break;
    die = next;
  }
  return die;
}

// "ns::Class::" for a declaration, from its enclosing scopes.
std::string qualifier_of(Dwarf_Die decl) {
  Dwarf_Die* scopes = nullptr;
  const int n = dwarf_getscopes_die(&decl, &scopes);
  std::string out;
  for (int i = n - 1; i >= 1; --i) {
    const int tag = dwarf_tag(&scopes[i]);
    if (tag != DW_TAG_namespace && tag != DW_TAG_class_type && tag != DW_TAG_structure_type &&
        tag != DW_TAG_union_type)
      continue;
    const char* name = dwarf_diename(&scopes[i]);
    out += std::string(name ? name : "(anonymous namespace)") + "::";
  }
  free(scopes);
  return out;
}

// A function DIE's name: the demangled linkage name (full signature) when there is one, else
// its qualified source name (static and C functions have no linkage name).
std::string function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (unsigned at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, at, &attr))
      if (const char* s = dwarf_formstring(&attr)) return demangle(s);
  }
  const char* name = dwarf_diename(die);
  if (!name) return "";
  return qualifier_of(declaration_of(*die)) + name;
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

// Adds file:line and inlined frames from DWARF, when the module has it.
void add_dwarf(Dwfl_Module* mod, Dwarf_Addr pc, SymbolizedFrame* f) {
  std::string file;
  int line = 0;
  if (Dwfl_Line* l = dwfl_module_getsrc(mod, pc)) {
    if (const char* src = dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr)) file = src;
  }
  Dwarf_Addr bias = 0;
  Dwarf_Die* cudie = dwfl_module_addrdie(mod, pc, &bias);
  if (cudie) {
    Dwarf_Die* scopes = nullptr;
    int n = dwarf_getscopes(cudie, pc - bias, &scopes);
    if (n > 0) {
      // dwarf_getscopes continues into the abstract origin of an inlined instance; restart from
      // the innermost concrete scope to walk the chain of inlined calls as laid out at `pc`.
      Dwarf_Die innermost = scopes[0];
      free(scopes);
      scopes = nullptr;
      n = dwarf_getscopes_die(&innermost, &scopes);
    }
    for (int i = 0; i < n; ++i) {
      Dwarf_Die* die = &scopes[i];
      const int tag = dwarf_tag(die);
      if (tag == DW_TAG_inlined_subroutine) {
        f->inlined.push_back({function_name(die), file, line});
        call_site(die, &file, &line);
      } else if (tag == DW_TAG_subprogram) {
        if (f->function.empty()) f->function = function_name(die);
        break;
      }
    }
    free(scopes);
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
  std::string note;     // short, for frames: "build-id mismatch"
  std::string problem;  // long, for the report footer
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

std::string SymbolizedFrame::display_name() const {
  if (!function.empty()) return function;
  if (!module.empty()) return base_name(module) + "+" + hex(module_offset);
  return hex(address);
}

Symbolizer::Symbolizer(std::vector<ModuleInfo> modules, std::optional<pid_t> pid) : pid_(pid) {
  for (ModuleInfo& m : modules) {
    auto mod = std::make_unique<Module>();
    mod->info = std::move(m);
    modules_.push_back(std::move(mod));
  }
}

Symbolizer::~Symbolizer() = default;

Symbolizer::Module* Symbolizer::module_for(uint64_t address) {
  // A module unloaded since may share its range with one loaded later; prefer the live one.
  Module* unloaded = nullptr;
  for (auto& m : modules_) {
    if (address < m->info.start || address >= m->info.end) continue;
    if (m->info.loaded) return m.get();
    if (!unloaded) unloaded = m.get();
  }
  return unloaded;
}

namespace {

// Files that may hold a module, best first. Each is checked against the build-id before use.
std::vector<std::string> candidate_files(const ModuleInfo& info, std::optional<pid_t> pid) {
  std::vector<std::string> out;
  // /proc/<pid>/maps marks a replaced file " (deleted)"; the name still finds its successor,
  // which the build-id check then accepts or refuses.
  std::string path = info.path;
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0)
    path.resize(path.size() - kDeleted.size());
  const std::string proc = pid ? "/proc/" + std::to_string(*pid) : "";
  if (!path.empty() && path[0] == '/') {
    out.push_back(path);
    // The process's own view: another mount namespace (a container) or a file since replaced.
    if (pid && !same_file(proc + "/root" + path, path)) out.push_back(proc + "/root" + path);
  } else if (!path.empty()) {
    // A relative name (dlopen("lib/x.so"), LD_LIBRARY_PATH=.) is relative to the process's cwd.
    if (pid) out.push_back(proc + "/cwd/" + path);
    out.push_back(path);
  }
  if (info.build_id.size() > 2)
    out.push_back("/usr/lib/debug/.build-id/" + info.build_id.substr(0, 2) + "/" +
                  info.build_id.substr(2) + ".debug");
  return out;
}

// Opens `file` as the module at load bias `base`. On success returns the handle; otherwise
// sets `why`. A build-id that differs from `expected` (when known) is a failure.
Dwfl* open_module(const std::string& file, const ModuleInfo& info, Dwfl_Module** out,
                  std::string* why, bool* mismatch) {
  Dwfl* dwfl = dwfl_begin(&kCallbacks);
  if (!dwfl) {
    *why = dwfl_errmsg(-1);
    return nullptr;
  }
  dwfl_report_begin(dwfl);
  // add_p_vaddr = true: `base` is the load bias (dlpi_addr), which is exactly what libdwfl calls
  // the bias in that mode; with false it would subtract the first segment's p_vaddr, which is
  // wrong for the (rare) files linked at a non-zero address.
  Dwfl_Module* mod =
      dwfl_report_elf(dwfl, base_name(info.path).c_str(), file.c_str(), -1, info.base, true);
  dwfl_report_end(dwfl, nullptr, nullptr);
  if (!mod) {
    *why = file + ": " + dwfl_errmsg(-1);
    dwfl_end(dwfl);
    return nullptr;
  }
  if (!info.build_id.empty()) {
    GElf_Addr bias = 0;
    dwfl_module_getelf(mod, &bias);
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int n = dwfl_module_build_id(mod, &bits, &vaddr);
    const std::string found = n > 0 ? hex_bytes(bits, n) : "";
    if (found != info.build_id) {
      *mismatch = true;
      *why = file + " has build-id " + (found.empty() ? "(none)" : found) +
             ", the process loaded " + info.build_id;
      dwfl_end(dwfl);
      return nullptr;
    }
  }
  *out = mod;
  return dwfl;
}

}  // namespace

const SymbolizedFrame& Symbolizer::symbolize(uint64_t return_address) {
  auto it = cache_.find(return_address);
  if (it != cache_.end()) return it->second;
  return cache_.emplace(return_address, resolve(return_address)).first->second;
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

  if (!m->attempted) {
    m->attempted = true;
    const std::vector<std::string> candidates = candidate_files(m->info, pid_);
    const std::string& path = m->info.path;
    bool mismatch = false;
    for (const std::string& file : candidates) {
      if (access(file.c_str(), R_OK) != 0) continue;
      std::string why;
      m->dwfl = open_module(file, m->info, &m->mod, &why, &mismatch);
      if (m->dwfl) break;
      if (m->problem.empty()) m->problem = why;
    }
    if (!m->dwfl) {
      m->note = mismatch ? "build-id mismatch" : "no readable file";
      if (m->problem.empty())
        m->problem = path.empty() ? "module has no file name" : path + ": no readable file";
    }
  }
  if (!m->dwfl) {
    f.note = m->note;
    return f;
  }

  // A return address points after the call; the call itself is one byte earlier at least.
  const Dwarf_Addr pc = return_address > 0 ? return_address - 1 : 0;
  GElf_Off offset = 0;
  GElf_Sym sym;
  if (const char* name =
          dwfl_module_addrinfo(m->mod, pc, &offset, &sym, nullptr, nullptr, nullptr)) {
    // Symbol-table names may carry a version ("__libc_start_main@@GLIBC_2.34"): not part of the
    // function's name, and it stops demangling.
    const std::string plain(name, std::strcspn(name, "@"));
    f.function = demangle(plain.c_str());
  }
  add_dwarf(m->mod, pc, &f);
  return f;
}

std::vector<std::string> Symbolizer::problems() const {
  std::vector<std::string> out;
  for (const auto& m : modules_)
    if (m->attempted && !m->dwfl) out.push_back(m->problem);
  return out;
}

}  // namespace rsr::ctl
