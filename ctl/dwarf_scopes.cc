#include "dwarf_scopes.h"

#include <dwarf.h>

#include <algorithm>
#include <cstdlib>

#include "symbolizer.h"

namespace rsr::ctl {
namespace {

// Deeper than any real nesting of scopes; a bound for a crafted file.
constexpr int kMaxDepth = 512;
// Functions whose ranges start at or below an address that are looked at for holding it (real
// functions do not overlap; a crafted file's may).
constexpr int kMaxOverlap = 16;

bool is_block(int tag) {
  return tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block ||
         tag == DW_TAG_try_block || tag == DW_TAG_catch_block;
}

bool is_scope(int tag) {
  return tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
         tag == DW_TAG_union_type;
}

std::string scope_name(Dwarf_Die* scope) {
  const char* name = dwarf_diename(scope);
  return std::string(name ? name : "(anonymous namespace)") + "::";
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

}  // namespace

ScopeIndex::Unit& ScopeIndex::unit(Dwarf_Die* cudie) {
  auto [it, fresh] = units_.try_emplace(cudie->cu);
  Unit& u = it->second;
  if (!fresh) return u;
  // One walk of the whole tree (an explicit stack: a crafted file may nest without end):
  // functions are declared in namespaces and classes, and in other functions (a lambda's).
  struct Pending {
    Dwarf_Die parent;
    uint32_t qualifier;
  };
  std::vector<Pending> pending = {{*cudie, 0}};
  while (!pending.empty()) {
    const Pending p = pending.back();
    pending.pop_back();
    Dwarf_Die child = p.parent;
    if (dwarf_child(&child, &child) != 0) continue;
    do {
      const int tag = dwarf_tag(&child);
      uint32_t qualifier = p.qualifier;
      if (tag == DW_TAG_subprogram) {
        u.qualifier_of.emplace(dwarf_dieoffset(&child), qualifier);
        Dwarf_Addr base = 0, low = 0, high = 0;
        for (ptrdiff_t off = 0; (off = dwarf_ranges(&child, off, &base, &low, &high)) > 0;)
          u.functions.push_back({low, high, child, u.functions.size()});
      } else if (is_scope(tag)) {
        u.qualifiers.push_back(u.qualifiers[p.qualifier] + scope_name(&child));
        qualifier = static_cast<uint32_t>(u.qualifiers.size() - 1);
      }
      if (dwarf_haschildren(&child) > 0) pending.push_back({child, qualifier});
    } while (dwarf_siblingof(&child, &child) == 0);
  }
  std::sort(u.functions.begin(), u.functions.end(), [](const Range& a, const Range& b) {
    return a.low != b.low ? a.low < b.low : a.order > b.order;
  });
  return u;
}

std::vector<Dwarf_Die> ScopeIndex::scopes(Dwarf_Die* cudie, Dwarf_Addr pc) {
  const std::vector<Range>& functions = unit(cudie).functions;
  auto it = std::upper_bound(functions.begin(), functions.end(), pc,
                             [](Dwarf_Addr a, const Range& r) { return a < r.low; });
  const Range* holder = nullptr;
  for (int n = 0; it != functions.begin() && n < kMaxOverlap; ++n) {
    --it;
    if (pc < it->high) {
      holder = &*it;
      break;
    }
  }
  if (!holder) return {};
  // Down through the blocks and inlined calls that hold pc, outermost first.
  std::vector<Dwarf_Die> chain = {holder->function};
  Dwarf_Die current = holder->function;
  for (int depth = 0; depth < kMaxDepth; ++depth) {
    Dwarf_Die child;
    bool deeper = false;
    if (dwarf_child(&current, &child) == 0) {
      do {
        const int tag = dwarf_tag(&child);
        if (is_block(tag) && dwarf_haspc(&child, pc) > 0) {
          if (tag == DW_TAG_inlined_subroutine) chain.push_back(child);
          current = child;
          deeper = true;
          break;
        }
      } while (dwarf_siblingof(&child, &child) == 0);
    }
    if (!deeper) break;
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

std::string ScopeIndex::qualifier(const Dwarf_Die& decl) {
  Dwarf_Die cudie;
  Dwarf_Die d = decl;
  if (dwarf_diecu(&d, &cudie, nullptr, nullptr)) {
    const Unit& u = unit(&cudie);
    auto it = u.qualifier_of.find(dwarf_dieoffset(&d));
    if (it != u.qualifier_of.end()) return u.qualifiers[it->second];
  }
  // Declared where the walk does not go (inside a function): libdw's walk, once for this name.
  Dwarf_Die* scopes = nullptr;
  const int n = dwarf_getscopes_die(&d, &scopes);
  std::string out;
  for (int i = n - 1; i >= 1; --i)
    if (is_scope(dwarf_tag(&scopes[i]))) out += scope_name(&scopes[i]);
  free(scopes);
  return out;
}

std::string ScopeIndex::function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (unsigned at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, at, &attr))
      if (const char* s = dwarf_formstring(&attr)) return demangle(s);
  }
  const char* name = dwarf_diename(die);
  if (!name) return "";
  return qualifier(declaration_of(*die)) + name;
}

}  // namespace rsr::ctl
