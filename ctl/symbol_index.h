// A module's ELF symbol table sorted by address, for the symbolizer. libdwfl's
// dwfl_module_addrinfo searches the whole table at every call (30 us an address in a 36 MB
// binary), so a capture or a reply with a hundred thousand distinct frames took minutes; this
// index is built once per module and answers with a binary search, choosing as
// dwfl_module_addrinfo does: a global symbol before a local one, the closest start, then the
// stronger binding and the smaller size; a sizeless symbol (an assembly label) only when no sized
// one holds the address and none ends between it and the address.
//
// Not thread-safe: one index per module, used by one symbolizer.
#pragma once

#include <elfutils/libdwfl.h>

#include <vector>

namespace rsr::ctl {

class SymbolIndex {
 public:
  explicit SymbolIndex(Dwfl_Module* mod);

  // The name of the symbol that holds `address` (a run-time address), as the table spells it
  // (it may carry a version: "__libc_start_main@@GLIBC_2.34"); nullptr when none does. The name
  // lives as long as the module.
  const char* name_at(Dwarf_Addr address) const;

 private:
  struct Symbol {
    Dwarf_Addr low, high;  // high == low for a sizeless symbol
    const char* name;
    int binding;  // higher is preferred: global, weak, local
    int order;    // in the table: of two otherwise equal, the first is preferred
  };
  struct Table {
    std::vector<Symbol> sized;               // by low, then the preferred one last
    std::vector<Dwarf_Addr> reach;           // reach[i]: the highest end among sized[0..i]
    std::vector<Symbol> sizeless;            // by low
    void sort();
    // The closest sized symbol holding `address`, and the highest end below it (for labels).
    const Symbol* holder(Dwarf_Addr address, Dwarf_Addr* reached) const;
  };

  Table globals_, locals_;
};

}  // namespace rsr::ctl
