#!/usr/bin/env python3
"""The hot/ boundary made enforceable: code under preload/hot/ may run inside malloc, so every
symbol its objects need from outside must be one known not to allocate, lock or block.

Usage: check_hot_symbols.py NM_PATH LIBRSRHOT_A
Fails, naming the symbol, when a hot object references anything else."""
import subprocess
import sys

# libc and libm functions that neither allocate nor take locks an allocation can wait on.
ALLOWED = {
    "_GLOBAL_OFFSET_TABLE_", "__errno_location", "clock_gettime", "expm1", "llround", "log",
    "memcpy", "memset", "memmove", "mincore", "mmap", "mmap64", "munmap", "sched_yield",
    "sysconf", "__stack_chk_fail",
    # Thread registration runs once per thread, outside any allocation's fast path; both
    # calls are made with the guard held (pthread_setspecific may allocate for high keys).
    "pthread_key_create", "pthread_setspecific",
    # Profiling captures (hot/capture.cc): gettid once per thread, and a futex wake of the
    # writer thread when it has work; neither allocates nor blocks.
    "syscall",
    # The stack walker (hot/unwind.cc): _dl_find_object is lock-free and async-signal-safe;
    # pthread_self reads the thread pointer; __libc_stack_end is the loader's variable.
    "_dl_find_object", "pthread_self", "__libc_stack_end",
}


def main() -> int:
    nm, archive = sys.argv[1], sys.argv[2]
    out = subprocess.run([nm, "-u", archive], check=True, capture_output=True, text=True).stdout
    bad = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[0] != "U":
            continue
        sym = parts[1]
        if sym.startswith(("_ZN3rsr", "rsr_")):  # the engine's own code and data
            continue
        if sym not in ALLOWED:
            bad.append(sym)
    if bad:
        print("preload/hot/ references symbols that may allocate, lock or block:")
        for s in sorted(set(bad)):
            print("  " + s)
        return 1
    print(f"preload/hot/: every external symbol is allowed ({archive})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
