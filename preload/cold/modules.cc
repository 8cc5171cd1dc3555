#include "modules.h"

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace rsr::cold {
namespace {

Vector<Module>* g_modules = nullptr;
unsigned long long g_adds = ~0ULL, g_subs = ~0ULL;

struct Counters {
  unsigned long long adds = 0, subs = 0;
};

int read_counters(dl_phdr_info* info, size_t size, void* data) {
  auto* c = static_cast<Counters*>(data);
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
    c->adds = info->dlpi_adds;
    c->subs = info->dlpi_subs;
  }
  return 1;  // the counters are the same in every entry: stop after the first
}

String hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  String s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

String build_id_of(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const char* name = p + sizeof(ElfW(Nhdr));
      const char* desc = name + ((n->n_namesz + 3) & ~3u);
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          desc + n->n_descsz <= end)
        return hex(reinterpret_cast<const unsigned char*>(desc), n->n_descsz);
      p = desc + ((n->n_descsz + 3) & ~3u);
    }
  }
  return {};
}

void range_of(const dl_phdr_info* info, uintptr_t* lo, uintptr_t* hi) {
  *lo = UINTPTR_MAX;
  *hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t s = info->dlpi_addr + ph.p_vaddr;
    if (s < *lo) *lo = s;
    if (s + ph.p_memsz > *hi) *hi = s + ph.p_memsz;
  }
}

String path_of(const dl_phdr_info* info) {
  const char* name = info->dlpi_name;
  if (name && name[0] == '/') return String(name);
  if (name && name[0]) {
    // Relative (dlopen("lib/x.so"), a relative LD_LIBRARY_PATH): only resolvable while we live.
    char resolved[PATH_MAX];
    return realpath(name, resolved) ? String(resolved) : String(name);
  }
  // The main program has an empty name here.
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? String(buf, static_cast<size_t>(n)) : String();
}

int collect(dl_phdr_info* info, size_t, void* data) {
  auto* seen = static_cast<Vector<Module>*>(data);
  Module m;
  range_of(info, &m.start, &m.end);
  if (m.start >= m.end) return 0;
  m.base = info->dlpi_addr;
  m.path = path_of(info);
  if (m.path.empty() || m.path.rfind("linux-vdso", 0) == 0) {
    if (m.path.empty()) m.path = "[vdso]";
  }
  m.build_id = build_id_of(info);
  seen->push_back(std::move(m));
  return 0;
}

}  // namespace

void refresh_modules() {
  if (!g_modules) g_modules = heap_new<Vector<Module>>();
  Counters c;
  dl_iterate_phdr(read_counters, &c);
  if (c.adds == g_adds && c.subs == g_subs) return;
  g_adds = c.adds;
  g_subs = c.subs;
  Vector<Module> now;
  dl_iterate_phdr(collect, &now);
  for (Module& m : *g_modules) m.loaded = false;
  for (Module& n : now) {
    bool known = false;
    for (Module& m : *g_modules) {
      if (m.start == n.start && m.path == n.path) {
        m.loaded = known = true;
        break;
      }
    }
    if (!known) g_modules->push_back(std::move(n));
  }
}

const Vector<Module>& modules() { return *g_modules; }

bool module_range_of(const void* addr, uintptr_t* lo, uintptr_t* hi) {
  struct Query {
    uintptr_t addr, lo, hi;
    bool found;
  } q{reinterpret_cast<uintptr_t>(addr), 0, 0, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* q = static_cast<Query*>(data);
        uintptr_t lo, hi;
        range_of(info, &lo, &hi);
        if (q->addr >= lo && q->addr < hi) {
          q->lo = lo;
          q->hi = hi;
          q->found = true;
          return 1;
        }
        return 0;
      },
      &q);
  *lo = q.lo;
  *hi = q.hi;
  return q.found;
}

}  // namespace rsr::cold
