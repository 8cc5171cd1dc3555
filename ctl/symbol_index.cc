#include "symbol_index.h"

#include <gelf.h>

#include <algorithm>

namespace rsr::ctl {
namespace {

// Symbols looked at below an address for holding it: real tables nest only aliases, a crafted
// one may nest anything.
constexpr int kMaxOverlap = 4096;

int binding_value(const GElf_Sym& sym) {
  switch (GELF_ST_BIND(sym.st_info)) {
    case STB_GLOBAL: return 3;
    case STB_WEAK: return 2;
    case STB_LOCAL: return 1;
    default: return 0;
  }
}

}  // namespace

void SymbolIndex::Table::sort() {
  std::sort(sized.begin(), sized.end(), [](const Symbol& a, const Symbol& b) {
    if (a.low != b.low) return a.low < b.low;
    if (a.binding != b.binding) return a.binding < b.binding;
    if (a.high != b.high) return a.high > b.high;  // of two equally bound, the smaller last
    return a.order > b.order;
  });
  reach.resize(sized.size());
  Dwarf_Addr highest = 0;
  for (size_t i = 0; i < sized.size(); ++i) reach[i] = highest = std::max(highest, sized[i].high);
  std::sort(sizeless.begin(), sizeless.end(),
            [](const Symbol& a, const Symbol& b) { return a.low < b.low; });
}

const SymbolIndex::Symbol* SymbolIndex::Table::holder(Dwarf_Addr address, Dwarf_Addr* reached) const {
  auto it = std::upper_bound(sized.begin(), sized.end(), address,
                             [](Dwarf_Addr a, const Symbol& s) { return a < s.low; });
  size_t i = static_cast<size_t>(it - sized.begin());
  if (i > 0) *reached = std::max(*reached, reach[i - 1]);
  for (int n = 0; i > 0 && n < kMaxOverlap; ++n) {
    --i;
    if (reach[i] <= address) break;  // nothing from here down reaches the address
    if (address < sized[i].high) return &sized[i];
  }
  return nullptr;
}

SymbolIndex::SymbolIndex(Dwfl_Module* mod) {
  const int count = dwfl_module_getsymtab(mod);
  const int first_global = dwfl_module_getsymtab_first_global(mod);
  for (int i = 1; i < count; ++i) {
    GElf_Sym sym;
    GElf_Addr address = 0;
    GElf_Word shndx = 0;
    const char* name = dwfl_module_getsym_info(mod, i, &sym, &address, &shndx, nullptr, nullptr);
    const int type = GELF_ST_TYPE(sym.st_info);
    if (!name || !*name || sym.st_shndx == SHN_UNDEF || type == STT_SECTION || type == STT_FILE ||
        type == STT_TLS)
      continue;
    // An absolute sizeless symbol (a version name) only ever names its exact address: not code.
    if (sym.st_size == 0 && sym.st_shndx >= SHN_LORESERVE) continue;
    Table& table = first_global <= 0 || i >= first_global ? globals_ : locals_;
    const Symbol s{address, address + sym.st_size, name, binding_value(sym), i};
    (sym.st_size > 0 ? table.sized : table.sizeless).push_back(s);
  }
  globals_.sort();
  locals_.sort();
}

const char* SymbolIndex::name_at(Dwarf_Addr address) const {
  Dwarf_Addr reached = 0;
  if (const Symbol* s = globals_.holder(address, &reached)) return s->name;
  if (const Symbol* s = locals_.holder(address, &reached)) return s->name;
  // An assembly label: the closest one at or below the address that no sized symbol covers.
  const Symbol* label = nullptr;
  for (const Table* t : {&globals_, &locals_}) {
    auto it = std::upper_bound(t->sizeless.begin(), t->sizeless.end(), address,
                               [](Dwarf_Addr a, const Symbol& s) { return a < s.low; });
    if (it == t->sizeless.begin()) continue;
    const Symbol& s = *std::prev(it);
    if (s.low >= reached && (!label || s.low > label->low)) label = &s;
  }
  return label ? label->name : nullptr;
}

}  // namespace rsr::ctl
