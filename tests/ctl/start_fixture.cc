// A program built -O2 -g, so that main sits in .text.startup right before crt1's _start, which
// has no DWARF. It prints where it was loaded and the return address inside _start (after its
// call to __libc_start_main), for the symbolizer test: "<path> <bias> <start> <end> <address>",
// hexadecimal, or "unsupported" where _start is not the x86-64 crt1 one.
#include <link.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Range {
  uintptr_t bias = 0, low = UINTPTR_MAX, high = 0;
};

// x86-64 crt1: "call *__libc_start_main@GOTPCREL(%rip)" (ff 15 + 4 bytes), then "hlt" (f4).
uintptr_t return_address_in_start() {
  const auto* p = reinterpret_cast<const unsigned char*>(getauxval(AT_ENTRY));
#if defined(__x86_64__)
  for (int i = 0; i + 6 < 64; ++i)
    if (p[i] == 0xff && p[i + 1] == 0x15 && p[i + 6] == 0xf4)
      return reinterpret_cast<uintptr_t>(p + i + 6);
#endif
  (void)p;
  return 0;
}

}  // namespace

int main() {
  Range r;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* r = static_cast<Range*>(data);
        r->bias = info->dlpi_addr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          r->low = std::min<uintptr_t>(r->low, info->dlpi_addr + ph.p_vaddr);
          r->high = std::max<uintptr_t>(r->high, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        return 1;  // the first object is the program itself
      },
      &r);
  const uintptr_t ra = return_address_in_start();
  char path[PATH_MAX] = {};
  if (ra == 0 || readlink("/proc/self/exe", path, sizeof path - 1) <= 0) {
    std::puts("unsupported");
    return 0;
  }
  // Some std:: code inlined into main, as in a real service, so its unit's last lines are
  // library headers (what _start used to be given).
  std::vector<std::string> words = {"start", "fixture"};
  std::string joined;
  for (const std::string& w : words) joined += w;
  std::printf("%s %lx %lx %lx %lx %zu\n", path, static_cast<unsigned long>(r.bias),
              static_cast<unsigned long>(r.low), static_cast<unsigned long>(r.high),
              static_cast<unsigned long>(ra), joined.size());
  return 0;
}
