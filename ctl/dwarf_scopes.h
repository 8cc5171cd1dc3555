// The functions that hold an address, inlined ones included, and their names, from a module's
// DWARF, for the symbolizer.
//
// libdw's dwarf_getscopes and dwarf_getscopes_die walk a compilation unit's whole DIE tree from
// its root at every call: 5 ms an address in a unit that includes a few heavy C++ headers, so a
// capture or a reply with ten thousand distinct frames took a minute. Here each unit is walked
// once, for its functions' address ranges and the namespaces and classes around their
// declarations; an address then costs a binary search and a descent through one function's
// blocks and inlined calls, and a name a table look-up.
//
// Not thread-safe: one index per module, used by one symbolizer.
#pragma once

#include <elfutils/libdw.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace rsr::ctl {

class ScopeIndex {
 public:
  // The inlined subroutines holding `pc` (an address in the unit's own terms: run-time address
  // minus the bias), innermost first, then the concrete function that holds them. Empty when no
  // function of the unit holds `pc`.
  std::vector<Dwarf_Die> scopes(Dwarf_Die* cudie, Dwarf_Addr pc);

  // A function DIE's name: the demangled linkage name (full signature) when there is one, else
  // its qualified source name ("ns::Class::name"; static and C functions have no linkage name).
  std::string function_name(Dwarf_Die* die);

 private:
  struct Range {
    Dwarf_Addr low, high;
    Dwarf_Die function;
    size_t order;  // in the unit: of two with the same start, the first is taken (as libdw does)
  };
  struct Unit {
    std::vector<Range> functions;  // by low, the first in the unit last
    std::vector<std::string> qualifiers = {""};
    std::unordered_map<Dwarf_Off, uint32_t> qualifier_of;  // function DIE -> qualifiers index
  };
  Unit& unit(Dwarf_Die* cudie);
  std::string qualifier(const Dwarf_Die& decl);

  std::unordered_map<const void*, Unit> units_;  // by Dwarf_Die::cu: unique across files
};

}  // namespace rsr::ctl
