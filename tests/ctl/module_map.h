// This process's module map as the preload reports it (path, build-id, load bias, range), read
// with dl_iterate_phdr, so tests can symbolize addresses of their own code, and as the reply's
// "modules" entry.
#pragma once

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "client.h"
#include "symbolizer.h"

namespace rsrtest {

inline std::string build_id_of(const dl_phdr_info* info) {
  static const char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof *n;
      const char* desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        std::string out;
        for (unsigned j = 0; j < n->n_descsz; ++j) {
          out += kDigits[static_cast<unsigned char>(desc[j]) >> 4];
          out += kDigits[static_cast<unsigned char>(desc[j]) & 15];
        }
        return out;
      }
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
  }
  return "";
}

// The module holding `address`; path "" when none does.
inline rsr::ctl::ModuleInfo module_of(const void* address) {
  struct Search {
    uintptr_t address;
    rsr::ctl::ModuleInfo found;
  } search{reinterpret_cast<uintptr_t>(address), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          lo = std::min<uintptr_t>(lo, info->dlpi_addr + ph.p_vaddr);
          hi = std::max<uintptr_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        if (s->address < lo || s->address >= hi) return 0;
        std::string path = info->dlpi_name ? info->dlpi_name : "";
        if (path.empty()) {  // the main program
          char buf[PATH_MAX];
          const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
          path.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
        }
        s->found = {path, build_id_of(info), info->dlpi_addr, lo, hi, true};
        return 1;
      },
      &search);
  return search.found;
}

// {"path", "build_id", "base", "start", "end", "loaded"} as the preload reports a module.
inline rsr::ctl::Json module_json(const rsr::ctl::ModuleInfo& m) {
  auto text = [](uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  return rsr::ctl::Json{{"path", m.path},         {"build_id", m.build_id},
                        {"base", text(m.base)},   {"start", text(m.start)},
                        {"end", text(m.end)},     {"loaded", m.loaded}};
}

}  // namespace rsrtest
