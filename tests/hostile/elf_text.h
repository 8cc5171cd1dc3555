// Where an ELF file's .text section is, in the file's own addresses: the hostile tests aim
// frames at real code with DWARF (rsrmemctl's own) so that symbolizing them is real work.
#pragma once

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace hostile {

struct Text {
  uint64_t address = 0, size = 0;
};

inline Text text_of(const std::string& path) {
  Text out;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  elf_version(EV_CURRENT);
  Elf* elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, nullptr) : nullptr;
  size_t strndx = 0;
  if (elf && elf_getshdrstrndx(elf, &strndx) == 0) {
    for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn)) != nullptr;) {
      GElf_Shdr shdr;
      const char* name = gelf_getshdr(scn, &shdr) ? elf_strptr(elf, strndx, shdr.sh_name) : nullptr;
      if (name && std::string(name) == ".text") out = {shdr.sh_addr, shdr.sh_size};
    }
  }
  if (elf) elf_end(elf);
  if (fd >= 0) close(fd);
  return out;
}

inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace hostile
