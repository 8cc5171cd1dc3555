// The library's own stack walker (unwind.h). May run inside malloc: no allocation, no lock, no
// system call; the work per frame is bounded by the size of that frame's call-frame information.
#include "unwind.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstring>

#include "engine.h"

extern "C" void* __libc_stack_end;  // the dynamic loader's: the main thread's stack top

namespace rsr::hot {

namespace {

// ---- Rules, packed into one word so a table slot is read whole ----
//   bits  0..31  CFA offset (signed), from rsp or rbp
//   bits 32..47  where rbp was saved, from the CFA (signed; with kRbpSaved)
//   bits 48..55  where the return address was saved, from the CFA (signed)
//   bits 56..63  flags
constexpr uint64_t kValid = 1ULL << 56;        // a rule (0 is "none")
constexpr uint64_t kCfaRbp = 1ULL << 57;       // CFA = rbp + offset (else rsp + offset)
constexpr uint64_t kRbpSaved = 1ULL << 58;     // rbp restored from the stack
constexpr uint64_t kStop = 1ULL << 59;         // the outermost frame (return address undefined)
constexpr uint64_t kNoInfo = 1ULL << 61;       // code without call-frame information
constexpr uint64_t kUnsupported = 1ULL << 60;  // rules the walker does not follow: libunwind's

struct Rule {
  bool cfa_rbp = false;
  int64_t cfa_off = 0;
  bool rbp_saved = false;
  int64_t rbp_off = 0;
  int64_t ra_off = 0;
};

uint64_t pack(const Rule& r) {
  if (r.cfa_off < INT32_MIN || r.cfa_off > INT32_MAX || r.rbp_off < INT16_MIN || r.rbp_off > INT16_MAX ||
      r.ra_off < INT8_MIN || r.ra_off > INT8_MAX)
    return kValid | kUnsupported;
  return kValid | (r.cfa_rbp ? kCfaRbp : 0) | (r.rbp_saved ? kRbpSaved : 0) |
         static_cast<uint32_t>(static_cast<int32_t>(r.cfa_off)) |
         static_cast<uint64_t>(static_cast<uint16_t>(static_cast<int16_t>(r.rbp_off))) << 32 |
         static_cast<uint64_t>(static_cast<uint8_t>(static_cast<int8_t>(r.ra_off))) << 48;
}

int64_t cfa_off_of(uint64_t w) { return static_cast<int32_t>(static_cast<uint32_t>(w)); }
int64_t rbp_off_of(uint64_t w) { return static_cast<int16_t>(static_cast<uint16_t>(w >> 32)); }
int64_t ra_off_of(uint64_t w) { return static_cast<int8_t>(static_cast<uint8_t>(w >> 48)); }

// ---- The process-wide table: instruction address -> rule ----
// Open addressing, never deleted from (but cleared whole after a dlclose). A writer claims an
// empty slot with kBusy, writes the rule, then publishes the key; readers match the key first.
constexpr int kTableBits = 13;
constexpr size_t kTableMask = (size_t{1} << kTableBits) - 1;
constexpr int kProbes = 8;
constexpr uintptr_t kBusy = 1;

struct Slot {
  std::atomic<uintptr_t> key;
  std::atomic<uint64_t> rule;
};
RSR_LARGE_BSS Slot g_table[size_t{1} << kTableBits];
std::atomic<uint64_t> g_rules{0}, g_gave_up{0};

size_t slot_of(uintptr_t pc) { return static_cast<size_t>((pc * 0x9E3779B97F4A7C15ULL) >> (64 - kTableBits)); }

uint64_t cached(uintptr_t pc) {
  size_t i = slot_of(pc);
  for (int probe = 0; probe < kProbes; ++probe, i = (i + 1) & kTableMask) {
    const uintptr_t k = g_table[i].key.load(std::memory_order_acquire);
    if (k == pc) return g_table[i].rule.load(std::memory_order_relaxed);
    if (k == 0) return 0;
  }
  return 0;
}

void remember(uintptr_t pc, uint64_t rule) {
  size_t i = slot_of(pc);
  for (int probe = 0; probe < kProbes; ++probe, i = (i + 1) & kTableMask) {
    uintptr_t k = g_table[i].key.load(std::memory_order_relaxed);
    if (k == pc) return;
    if (k != 0) continue;
    if (!g_table[i].key.compare_exchange_strong(k, kBusy, std::memory_order_acq_rel)) {
      if (k == pc) return;
      continue;
    }
    g_table[i].rule.store(rule, std::memory_order_relaxed);
    g_table[i].key.store(pc, std::memory_order_release);
    g_rules.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Full around this address: the rule is derived again next time.
}

// ---- Reading DWARF call-frame information (.eh_frame, .eh_frame_hdr) ----
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  bool have(size_t n) {
    if (!ok || static_cast<size_t>(end - p) < n) ok = false;
    return ok;
  }
  template <typename T>
  T fixed() {
    T v{};
    if (!have(sizeof v)) return v;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
  uint8_t u8() { return fixed<uint8_t>(); }
  uint64_t uleb() {
    uint64_t v = 0;
    for (int shift = 0; have(1); shift += 7) {
      const uint8_t b = *p++;
      if (shift < 64) v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      if (shift > 63) ok = false;
    }
    return 0;
  }
  int64_t sleb() {
    uint64_t v = 0;
    int shift = 0;
    uint8_t b = 0;
    do {
      if (!have(1)) return 0;
      b = *p++;
      if (shift < 64) v |= static_cast<uint64_t>(b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= ~uint64_t{0} << shift;
    return static_cast<int64_t>(v);
  }
  void skip(uint64_t n) {
    if (have(n)) p += n;
  }
};

constexpr uint8_t kPeOmit = 0xff;

// A pointer in DWARF's exception-header encoding. `applied`: add the base the encoding names
// (false for lengths such as an FDE's address range). Indirect pointers are not followed.
bool read_encoded(Reader& r, uint8_t enc, bool applied, uintptr_t datarel, uintptr_t* out) {
  if (enc == kPeOmit) return false;
  const auto at = reinterpret_cast<uintptr_t>(r.p);
  uint64_t v = 0;
  switch (enc & 0x0f) {
    case 0x00: v = r.fixed<uint64_t>(); break;
    case 0x01: v = r.uleb(); break;
    case 0x02: v = r.fixed<uint16_t>(); break;
    case 0x03: v = r.fixed<uint32_t>(); break;
    case 0x04: v = r.fixed<uint64_t>(); break;
    case 0x09: v = static_cast<uint64_t>(r.sleb()); break;
    case 0x0a: v = static_cast<uint64_t>(static_cast<int64_t>(r.fixed<int16_t>())); break;
    case 0x0b: v = static_cast<uint64_t>(static_cast<int64_t>(r.fixed<int32_t>())); break;
    case 0x0c: v = r.fixed<uint64_t>(); break;
    default: return false;
  }
  if (applied) {
    switch (enc & 0x70) {
      case 0x00: break;
      case 0x10: v += at; break;
      case 0x30: v += datarel; break;
      default: return false;
    }
  }
  *out = static_cast<uintptr_t>(v);
  return r.ok;
}

constexpr size_t kMaxEntry = 1 << 16;  // longest CIE or FDE read

// The FDE whose range holds `pc`, through the object's .eh_frame_hdr search table.
const uint8_t* find_fde(uintptr_t pc) {
  dl_find_object obj;
  if (_dl_find_object(reinterpret_cast<void*>(pc), &obj) != 0 || !obj.dlfo_eh_frame) return nullptr;
  const auto* hdr = static_cast<const uint8_t*>(obj.dlfo_eh_frame);
  constexpr uint8_t kDatarelSdata4 = 0x3b;
  if (hdr[0] != 1 || hdr[3] != kDatarelSdata4) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(hdr);
  Reader r{hdr + 4, hdr + 4 + 16};
  uintptr_t eh_frame = 0, count = 0;
  if (!read_encoded(r, hdr[1], true, base, &eh_frame) || !read_encoded(r, hdr[2], true, base, &count) || count == 0)
    return nullptr;
  const uint8_t* table = r.p;  // pairs of int32: initial location, FDE; both from `hdr`
  auto entry = [&](size_t i, int k) {
    int32_t v;
    std::memcpy(&v, table + i * 8 + static_cast<size_t>(k) * 4, 4);
    return base + static_cast<uintptr_t>(static_cast<intptr_t>(v));
  };
  if (pc < entry(0, 0)) return nullptr;
  size_t lo = 0, hi = count;  // the last entry whose location is <= pc is in [lo, hi)
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    if (entry(mid, 0) <= pc) lo = mid;
    else hi = mid;
  }
  return reinterpret_cast<const uint8_t*>(entry(lo, 1));
}

// Register numbers of the x86-64 DWARF mapping.
constexpr uint64_t kRegRbp = 6, kRegRsp = 7, kRegRa = 16;

struct RegRule {
  enum Kind : uint8_t { kSame, kOffset, kUndefined, kOther } kind = kSame;
  int64_t off = 0;
};
struct Row {
  uint64_t cfa_reg = kRegRsp;
  int64_t cfa_off = 0;
  bool cfa_other = false;  // an expression, or a register the walker does not track
  RegRule rbp, ra;
};

struct Cie {
  uint64_t code_align = 1;
  int64_t data_align = 1;
  uint8_t fde_enc = 0;
  bool has_aug_data = false;
  bool signal = false;
  const uint8_t* insns = nullptr;
  const uint8_t* end = nullptr;
};

bool parse_cie(const uint8_t* at, Cie* cie) {
  Reader r{at, at + 8};
  const uint32_t length = r.fixed<uint32_t>();
  if (length == 0 || length == 0xffffffff || length > kMaxEntry) return false;
  r.end = at + 4 + length;
  if (r.fixed<uint32_t>() != 0) return false;  // not a CIE
  const uint8_t version = r.u8();
  if (version != 1 && version != 3 && version != 4) return false;
  const auto* aug = reinterpret_cast<const char*>(r.p);
  size_t aug_len = 0;
  while (r.have(aug_len + 1) && aug[aug_len] != 0) ++aug_len;
  r.skip(aug_len + 1);
  if (version == 4) r.skip(2);  // address and segment selector sizes
  cie->code_align = r.uleb();
  cie->data_align = r.sleb();
  const uint64_t ra_reg = version == 1 ? r.u8() : r.uleb();
  if (!r.ok || ra_reg != kRegRa) return false;
  if (aug_len > 0) {
    if (aug[0] != 'z') return false;
    cie->has_aug_data = true;
    const uint64_t data_len = r.uleb();
    if (!r.have(data_len)) return false;
    Reader d{r.p, r.p + data_len};
    for (size_t i = 1; i < aug_len; ++i) {
      switch (aug[i]) {
        case 'R': cie->fde_enc = d.u8(); break;
        case 'L': d.u8(); break;
        case 'P': {
          uintptr_t ignored = 0;
          if (!read_encoded(d, static_cast<uint8_t>(d.u8() & 0x7f), false, 0, &ignored)) return false;
          break;
        }
        case 'S': cie->signal = true; break;
        default: i = aug_len; break;  // unknown: the data length lets the rest be skipped
      }
    }
    if (!d.ok) return false;
    r.p += data_len;
  }
  cie->insns = r.p;
  cie->end = at + 4 + length;
  return r.ok;
}

RegRule* tracked(Row& row, uint64_t reg) {
  if (reg == kRegRbp) return &row.rbp;
  if (reg == kRegRa) return &row.ra;
  return nullptr;
}
RegRule initial_of(const Row* initial, uint64_t reg) {
  if (!initial) return RegRule{};
  return reg == kRegRbp ? initial->rbp : initial->ra;
}

// Runs call-frame instructions until the row that covers `target` (or the end). `initial` is the
// CIE's row, for DW_CFA_restore. False on anything not understood.
bool execute(Reader r, const Cie& cie, uintptr_t loc, uintptr_t target, const Row* initial, Row* row) {
  constexpr int kStates = 8;
  Row saved[kStates];
  int depth = 0;
  auto set = [&](uint64_t reg, RegRule::Kind kind, int64_t off) {
    if (RegRule* rr = tracked(*row, reg)) *rr = RegRule{kind, off};
  };
  auto restore = [&](uint64_t reg) {
    if (RegRule* rr = tracked(*row, reg)) *rr = initial_of(initial, reg);
  };
  auto advance = [&](uint64_t delta) {
    const uintptr_t next = loc + delta * cie.code_align;
    if (next > target) return false;
    loc = next;
    return true;
  };
  while (r.ok && r.p < r.end) {
    const uint8_t op = r.u8();
    const uint8_t low = op & 0x3f;
    switch (op & 0xc0) {
      case 0x40:
        if (!advance(low)) return true;
        continue;
      case 0x80: set(low, RegRule::kOffset, static_cast<int64_t>(r.uleb()) * cie.data_align); continue;
      case 0xc0: restore(low); continue;
      default: break;
    }
    switch (op) {
      case 0x00: break;  // nop
      case 0x01: {       // set_loc
        uintptr_t to = 0;
        if (!read_encoded(r, cie.fde_enc, true, 0, &to)) return false;
        if (to > target) return true;
        loc = to;
        break;
      }
      case 0x02:
        if (!advance(r.u8())) return true;
        break;
      case 0x03:
        if (!advance(r.fixed<uint16_t>())) return true;
        break;
      case 0x04:
        if (!advance(r.fixed<uint32_t>())) return true;
        break;
      case 0x05: {  // offset_extended
        const uint64_t reg = r.uleb();
        set(reg, RegRule::kOffset, static_cast<int64_t>(r.uleb()) * cie.data_align);
        break;
      }
      case 0x06: restore(r.uleb()); break;
      case 0x07: set(r.uleb(), RegRule::kUndefined, 0); break;
      case 0x08: set(r.uleb(), RegRule::kSame, 0); break;
      case 0x09: {  // register
        const uint64_t reg = r.uleb();
        r.uleb();
        set(reg, RegRule::kOther, 0);
        break;
      }
      case 0x0a:
        if (depth == kStates) return false;
        saved[depth++] = *row;
        break;
      case 0x0b:
        if (depth == 0) return false;
        *row = saved[--depth];
        break;
      case 0x0c:
        row->cfa_reg = r.uleb();
        row->cfa_off = static_cast<int64_t>(r.uleb());
        row->cfa_other = false;
        break;
      case 0x0d:
        row->cfa_reg = r.uleb();
        break;
      case 0x0e: row->cfa_off = static_cast<int64_t>(r.uleb()); break;
      case 0x0f:
        r.skip(r.uleb());
        row->cfa_other = true;
        break;
      case 0x10:    // expression
      case 0x11: {  // offset_extended_sf
        const uint64_t reg = r.uleb();
        set(reg, RegRule::kOffset, r.sleb() * cie.data_align);
        break;
      }
      case 0x12:
        row->cfa_reg = r.uleb();
        row->cfa_off = r.sleb() * cie.data_align;
        row->cfa_other = false;
        break;
      case 0x13: row->cfa_off = r.sleb() * cie.data_align; break;
      case 0x14: {  // val_offset
        const uint64_t reg = r.uleb();
        r.uleb();
        set(reg, RegRule::kOther, 0);
        break;
      }
      case 0x15: {  // val_offset_sf
        const uint64_t reg = r.uleb();
        r.sleb();
        set(reg, RegRule::kOther, 0);
        break;
      }
      case 0x2e: r.uleb(); break;  // GNU_args_size
      case 0x2f: {                 // GNU_negative_offset_extended
        const uint64_t reg = r.uleb();
        set(reg, RegRule::kOffset, -static_cast<int64_t>(r.uleb()) * cie.data_align);
        break;
      }
      default: return false;
    }
  }
  return r.ok;
}

// The rule at `pc` (an instruction address), derived from the call-frame information.
uint64_t derive(uintptr_t pc) {
  const uint8_t* fde = find_fde(pc);
  if (!fde) return kValid | kNoInfo;
  Reader r{fde, fde + 8};
  const uint32_t length = r.fixed<uint32_t>();
  if (length == 0 || length == 0xffffffff || length > kMaxEntry) return kValid | kNoInfo;
  r.end = fde + 4 + length;
  const uint8_t* cie_field = r.p;
  const uint32_t cie_off = r.fixed<uint32_t>();
  if (!r.ok || cie_off == 0) return kValid | kNoInfo;
  Cie cie;
  if (!parse_cie(cie_field - cie_off, &cie)) return kValid | kUnsupported;
  uintptr_t begin = 0, range = 0;
  if (!read_encoded(r, cie.fde_enc, true, 0, &begin) ||
      !read_encoded(r, static_cast<uint8_t>(cie.fde_enc & 0x0f), false, 0, &range))
    return kValid | kUnsupported;
  if (pc < begin || pc - begin >= range) return kValid | kNoInfo;  // in no function's range
  if (cie.signal) return kValid | kUnsupported;
  if (cie.has_aug_data) r.skip(r.uleb());
  if (!r.ok) return kValid | kUnsupported;
  Row initial;
  if (!execute(Reader{cie.insns, cie.end}, cie, 0, UINTPTR_MAX, nullptr, &initial)) return kValid | kUnsupported;
  Row row = initial;
  if (!execute(Reader{r.p, r.end}, cie, begin, pc, &initial, &row)) return kValid | kUnsupported;
  if (row.ra.kind == RegRule::kUndefined) return kValid | kStop;
  if (row.cfa_other || (row.cfa_reg != kRegRsp && row.cfa_reg != kRegRbp) || row.ra.kind != RegRule::kOffset ||
      row.rbp.kind == RegRule::kOther || row.rbp.kind == RegRule::kUndefined)
    return kValid | kUnsupported;
  Rule rule;
  rule.cfa_rbp = row.cfa_reg == kRegRbp;
  rule.cfa_off = row.cfa_off;
  rule.ra_off = row.ra.off;
  rule.rbp_saved = row.rbp.kind == RegRule::kOffset;
  rule.rbp_off = row.rbp.off;
  return pack(rule);
}

uint64_t rule_at(uintptr_t pc) {
  uint64_t rule = cached(pc);
  if (rule == 0) {
    rule = derive(pc);
    remember(pc, rule);
  }
  return rule;
}

// The highest address the calling thread's stack may be read below, or 0. A thread glibc
// created has its descriptor (pthread_self) at the top of its stack block, above the stack;
// the main thread's stack ends just above __libc_stack_end. Anything else (an alternate signal
// stack, a coroutine's stack) is left to libunwind.
uintptr_t stack_top(uintptr_t sp) {
  constexpr uintptr_t kMaxThreadStack = uintptr_t{64} << 20;
  constexpr uintptr_t kMaxMainStack = uintptr_t{1} << 30;
  const auto self = static_cast<uintptr_t>(pthread_self());
  if (sp < self && self - sp <= kMaxThreadStack) return self;
  const auto main_end = reinterpret_cast<uintptr_t>(__libc_stack_end);
  if (sp < main_end && main_end - sp <= kMaxMainStack) return (main_end + 4095) & ~uintptr_t{4095};
  return 0;
}

std::atomic<uint64_t> g_generation{1};

// Whether the stack still reads what `memo` read, from the same starting registers. rbp is
// compared only where the walk used it (a frame addressed from rbp): elsewhere it is any value
// the program keeps in it. Every load the walk recorded was inside this thread's stack (each was
// bounded so), and the stack of a live thread stays mapped: reading it again needs no bound.
bool memo_holds(const StackMemo& memo, int want, uintptr_t sp, uintptr_t bp, uintptr_t pc) {
  if (memo.frames_n == 0 || memo.want != want || memo.sp != sp || memo.pc != pc || (memo.bp_used && memo.bp != bp) ||
      memo.generation != g_generation.load(std::memory_order_relaxed))
    return false;
  bool same = true;
  for (int i = 0; i < memo.loads_n; ++i) {
    const StackMemo::Load& l = memo.loads[i];
    same &= *reinterpret_cast<const volatile uintptr_t*>(l.at) == l.value;
  }
  return same;
}

// Recording a walk into a memo. An rbp value loaded from the stack is kept for the check only
// once a frame addressed from rbp uses it; until then its address carries a tag (bit 0).
struct Recorder {
  StackMemo* memo = nullptr;
  int bp_from = -1;  // the load rbp now holds, or -1: the starting rbp

  void start(StackMemo* m, uintptr_t sp, uintptr_t bp, uintptr_t pc) {
    memo = m;
    m->sp = sp;
    m->bp = bp;
    m->pc = pc;
    m->bp_used = false;
    m->loads_n = 0;
    bp_from = -1;
  }
  void loaded(uintptr_t at, uintptr_t value, bool is_bp) {
    if (!memo) return;
    if (is_bp) {
      if (at & 1) {  // cannot be tagged: give the memo up
        forget(memo);
        memo = nullptr;
        return;
      }
      bp_from = memo->loads_n;
      at |= 1;
    }
    memo->loads[memo->loads_n++] = StackMemo::Load{at, value};
  }
  void bp_used() {
    if (!memo) return;
    if (bp_from < 0) memo->bp_used = true;
    else memo->loads[bp_from].at &= ~uintptr_t{1};
  }
  // `m` (if any) no longer holds a stack, so whatever its user records beside it (a site) is
  // never taken for another.
  static void forget(StackMemo* m) {
    if (m) m->frames_n = 0;
  }
  void finish(const uintptr_t* out, int n, int want) {
    int kept = 0;
    for (int i = 0; i < memo->loads_n; ++i)
      if (!(memo->loads[i].at & 1)) memo->loads[kept++] = memo->loads[i];
    memo->loads_n = kept;
    for (int i = 0; i < n; ++i) memo->frames[i] = out[i];
    memo->frames_n = n;
    memo->want = want;
    memo->site = kMemoNoSite;
    memo->generation = g_generation.load(std::memory_order_relaxed);
  }
};

}  // namespace

StackMemo* stack_memo_init(void* block, int capacity) {
  auto* m = static_cast<StackMemo*>(block);
  *m = StackMemo{};
  m->capacity = capacity;
  m->frames = reinterpret_cast<uintptr_t*>(m + 1);
  m->loads = reinterpret_cast<StackMemo::Load*>(m->frames + capacity);
  return m;
}

namespace {

// The walk proper. `pc` is an exact instruction address (`exact`: the walker's own, not
// reported) or a return address, a frame to report; `sp` and `bp` are the registers there.
int walk(uintptr_t pc, uintptr_t sp, uintptr_t bp, bool exact, uintptr_t* out, int want, uintptr_t skip_lo,
         uintptr_t skip_hi, StackMemo* memo, bool* reused) {
  if (reused) *reused = false;
  if (memo && want > memo->capacity) memo = nullptr;
  const uintptr_t lo = sp, hi = stack_top(sp);
  Recorder rec;
  if (hi == 0) {
    Recorder::forget(memo);
    return -1;
  }
  int n = 0;
  for (;;) {
    if (!exact) {
      if (pc == 0 || n == want) break;
      if (n > 0 || pc < skip_lo || pc >= skip_hi) {
        if (n == 0 && memo) {
          if (memo_holds(*memo, want, sp, bp, pc)) {
            for (int i = 0; i < memo->frames_n; ++i) out[i] = memo->frames[i];
            *reused = true;
            return memo->frames_n;
          }
          rec.start(memo, sp, bp, pc);
        }
        out[n++] = pc;
      }
    }
    const uint64_t rule = rule_at(exact ? pc : pc - 1);  // a return address follows its call
    exact = false;
    if (rule & kUnsupported) {
      g_gave_up.fetch_add(1, std::memory_order_relaxed);
      Recorder::forget(memo);
      return -1;
    }
    if (rule & kStop) break;
    if (rule & kNoInfo) {
      // Code without call-frame information (built without unwind tables, hand-written): if rbp
      // is a frame pointer into this stack, the standard frame it heads gives the caller, as
      // libunwind's fallback guesses too. Bounded like every read here.
      rec.bp_used();
      if (bp < sp || (bp & 7) != 0 || bp > hi - 2 * sizeof(uintptr_t)) break;
      const uintptr_t frame = bp;
      bp = *reinterpret_cast<const uintptr_t*>(frame);
      rec.loaded(frame, bp, true);
      pc = *reinterpret_cast<const uintptr_t*>(frame + sizeof(uintptr_t));
      rec.loaded(frame + sizeof(uintptr_t), pc, false);
      sp = frame + 2 * sizeof(uintptr_t);
      continue;
    }
    if (rule & kCfaRbp) rec.bp_used();
    const uintptr_t cfa = ((rule & kCfaRbp) ? bp : sp) + static_cast<uintptr_t>(cfa_off_of(rule));
    if (cfa <= sp || cfa > hi) break;
    const uintptr_t ra_at = cfa + static_cast<uintptr_t>(ra_off_of(rule));
    if (ra_at < lo || ra_at > hi - sizeof(uintptr_t)) break;
    if (rule & kRbpSaved) {
      const uintptr_t bp_at = cfa + static_cast<uintptr_t>(rbp_off_of(rule));
      if (bp_at < lo || bp_at > hi - sizeof(uintptr_t)) break;
      bp = *reinterpret_cast<const uintptr_t*>(bp_at);
      rec.loaded(bp_at, bp, true);
    }
    pc = *reinterpret_cast<const uintptr_t*>(ra_at);
    rec.loaded(ra_at, pc, false);
    sp = cfa;
  }
  if (rec.memo) rec.finish(out, n, want);
  else Recorder::forget(memo);  // the walk kept no frame: the memo must not vouch for another stack
  return n;
}

}  // namespace

[[gnu::noinline]] int walk_stack(uintptr_t* out, int want, uintptr_t skip_lo, uintptr_t skip_hi, StackMemo* memo,
                                 bool* reused) {
  uintptr_t pc, sp, bp;
  // This instruction's address and the registers as they are at it: the first frame's state.
  __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(bp));
  return walk(pc, sp, bp, true, out, want, skip_lo, skip_hi, memo, reused);
}

int walk_stack_from(const CallerFrame& from, uintptr_t* out, int want, uintptr_t skip_lo, uintptr_t skip_hi,
                    StackMemo* memo, bool* reused) {
  return walk(from.pc, from.sp, from.bp, false, out, want, skip_lo, skip_hi, memo, reused);
}

bool memo_holds_from(const StackMemo& memo, int want, const CallerFrame& from) {
  return memo_holds(memo, want, from.sp, from.bp, from.pc);
}

void walk_forget() {
  g_generation.fetch_add(1, std::memory_order_relaxed);
  for (Slot& s : g_table) s.key.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  g_rules.store(0, std::memory_order_relaxed);
}

WalkCounts walk_counts() {
  return WalkCounts{g_rules.load(std::memory_order_relaxed), g_gave_up.load(std::memory_order_relaxed)};
}

}  // namespace rsr::hot
