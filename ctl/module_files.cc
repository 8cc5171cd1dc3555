#include "module_files.h"

#include <elfutils/libdwelf.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "symbolizer.h"

namespace rsr::ctl {
namespace {

constexpr const char* kDebugRoot = "/usr/lib/debug";

std::string hex_bytes(const unsigned char* bits, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[bits[i] >> 4];
    out += kDigits[bits[i] & 15];
  }
  return out;
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// /usr/lib/debug/.build-id/xx/yyyy.debug, or "" for an id that is not valid hex.
std::string build_id_path(const std::string& id) {
  if (!valid_build_id(id)) return "";
  return std::string(kDebugRoot) + "/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug";
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return stat(a.c_str(), &sa) == 0 && stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool same_file(int fd, const std::string& path) {
  struct stat sa, sb;
  return fstat(fd, &sa) == 0 && stat(path.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// An ELF handle over a descriptor that stays open after it.
class ElfOf {
 public:
  explicit ElfOf(int fd) : elf_(elf_begin(fd, ELF_C_READ_MMAP, nullptr)) {}
  ~ElfOf() {
    if (elf_) elf_end(elf_);
  }
  ElfOf(const ElfOf&) = delete;
  ElfOf& operator=(const ElfOf&) = delete;
  Elf* get() const { return elf_ && elf_kind(elf_) == ELF_K_ELF ? elf_ : nullptr; }

 private:
  Elf* elf_;
};

std::string build_id_of(int fd) {
  ElfOf elf(fd);
  const void* bits = nullptr;
  const ssize_t n = elf.get() ? dwelf_elf_gnu_build_id(elf.get(), &bits) : -1;
  return n > 0 ? hex_bytes(static_cast<const unsigned char*>(bits), static_cast<size_t>(n)) : "";
}

uint32_t crc_of(int fd) {
  uLong crc = crc32(0, nullptr, 0);
  unsigned char buf[65536];
  for (off_t at = 0;;) {
    const ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    crc = crc32(crc, buf, static_cast<uInt>(n));
    at += n;
  }
  return static_cast<uint32_t>(crc);
}

// The .gnu_debugaltlink of an ELF file (a dwz file's name and build-id), if it has one.
struct AltLink {
  std::string name, build_id;
};
std::optional<AltLink> altlink_of(const std::string& path) {
  const OpenedElf file = open_elf(path);
  if (!file.fd) return std::nullopt;
  ElfOf elf(file.fd.get());
  size_t shstrndx = 0;
  if (!elf.get() || elf_getshdrstrndx(elf.get(), &shstrndx) != 0) return std::nullopt;
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf.get(), scn)) != nullptr;) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    const char* name = elf_strptr(elf.get(), shstrndx, shdr.sh_name);
    if (!name || std::strcmp(name, ".gnu_debugaltlink") != 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || !data->d_buf || data->d_size == 0) return std::nullopt;
    const char* bytes = static_cast<const char*>(data->d_buf);
    const size_t len = strnlen(bytes, data->d_size);
    if (len == 0 || len + 1 >= data->d_size) return std::nullopt;
    return AltLink{std::string(bytes, len),
                   hex_bytes(reinterpret_cast<const unsigned char*>(bytes) + len + 1,
                             data->d_size - len - 1)};
  }
  return std::nullopt;
}

// Where a debug file is looked for, best first, and the build-id it must have ("" : check the
// CRC instead, when there is one).
struct Search {
  std::vector<std::string> places;
  std::string build_id;
  bool alt = false;
};

Search search_for(Dwfl_Module* mod, const std::string& file, const char* debuglink) {
  Search s;
  // The directories of the file as named and as resolved: libdw uses the latter.
  std::vector<std::string> dirs = {dir_of(file)};
  if (char* real = realpath(file.c_str(), nullptr)) {
    if (dir_of(real) != dirs[0]) dirs.push_back(dir_of(real));
    std::free(real);
  }
  const std::optional<AltLink> alt = altlink_of(file);
  if (debuglink && alt && alt->name == debuglink) {
    s.alt = true;
    s.build_id = alt->build_id;
    if (const std::string p = build_id_path(s.build_id); !p.empty()) s.places.push_back(p);
    const std::string name = alt->name, base = base_of(name);
    for (const std::string& dir : dirs) {
      s.places.push_back(name[0] == '/' ? name : join(dir, name));
      s.places.push_back(join(join(dir, ".dwz"), base));
    }
    s.places.push_back(join(std::string(kDebugRoot) + "/.dwz", base));
    return s;
  }
  s.build_id = module_build_id(mod);
  if (const std::string p = build_id_path(s.build_id); !p.empty()) s.places.push_back(p);
  if (debuglink && *debuglink) {
    const std::string link = debuglink;
    for (const std::string& dir : dirs) {
      s.places.push_back(join(dir, link));
      s.places.push_back(join(join(dir, ".debug"), link));
      if (dir[0] == '/') s.places.push_back(std::string(kDebugRoot) + join(dir, link));
    }
  }
  return s;
}

// libdwfl's find_debuginfo callback: the first place holding a regular ELF file with the right
// build-id (or CRC), opened by open_elf().
int find_debuginfo(Dwfl_Module* mod, void** userdata, const char*, Dwarf_Addr,
                   const char* file_name, const char* debuglink, GElf_Word crc,
                   char** debuginfo_file_name) {
  if (!file_name) return -1;
  auto* state = userdata ? static_cast<DebugSearch*>(*userdata) : nullptr;
  const Search s = search_for(mod, file_name, debuglink);
  for (const std::string& place : s.places) {
    OpenedElf f = open_elf(place);
    if (!f.fd) {
      // libdw looks for a dwz file again by itself, opening what it finds as it is.
      if (s.alt && f.irregular && state && !state->unsafe) {
        state->unsafe = true;
        state->unsafe_why = place + ": " + f.why;
      }
      continue;
    }
    if (same_file(f.fd.get(), file_name)) continue;  // the file itself by another name
    const bool matches = !s.build_id.empty() ? build_id_of(f.fd.get()) == s.build_id
                                             : crc == 0 || crc_of(f.fd.get()) == crc;
    if (!matches) continue;
    *debuginfo_file_name = strdup(place.c_str());
    return f.fd.release();
  }
  return -1;
}

// Modules are always reported with a descriptor, so libdwfl never needs to find one.
int find_no_elf(Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**) { return -1; }

}  // namespace

const Dwfl_Callbacks kModuleCallbacks = {
    .find_elf = find_no_elf,
    .find_debuginfo = find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = nullptr,
};

std::string module_build_id(Dwfl_Module* mod) {
  const unsigned char* bits = nullptr;
  GElf_Addr vaddr = 0;
  const int n = dwfl_module_build_id(mod, &bits, &vaddr);
  return n > 0 ? hex_bytes(bits, static_cast<size_t>(n)) : "";
}

bool valid_build_id(const std::string& id) {
  if (id.size() < 4 || id.size() > 128 || id.size() % 2 != 0) return false;
  for (const char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

OpenedElf open_elf(const std::string& path) {
  OpenedElf out;
  OpenedFile f = open_regular_file(path);
  if (!f.fd) {
    out.missing = f.error == ENOENT || f.error == ENOTDIR;
    out.irregular = f.error == 0;
    out.why = f.why;
    return out;
  }
  char magic[4] = {};
  if (pread(f.fd.get(), magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) ||
      std::memcmp(magic, "\177ELF", 4) != 0) {
    out.why = "not an ELF file";
    return out;
  }
  out.fd = std::move(f.fd);
  return out;
}

std::vector<std::string> module_candidates(const ModuleInfo& info, std::optional<pid_t> pid) {
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
  if (const std::string p = build_id_path(info.build_id); !p.empty()) out.push_back(p);
  return out;
}

}  // namespace rsr::ctl
