// Libraries the engine uses privately, loaded with dlopen(RTLD_LOCAL) and called through
// pointers so that none of their exported symbols become the process's:
// - mimalloc, the engine's own heap. Debian's libmimalloc.so is an override build that exports
//   malloc, free and operator new; linked normally it would capture the service's allocations.
//   Nothing else in the process calls mi_*, so every byte it holds is the engine's. It comes in
//   as the dependency of librsrmem-heap.so, which hides the environment from it.
// - libunwind, for stack capture. It exports _Unwind_* and backtrace, which would otherwise
//   replace the process's own (libgcc's) exception unwinder.
// Loaded once, outside any allocation hook, with the guard held, by the control thread: mimalloc
// when it finishes the start-up, libunwind once the library's own walker leaves a stack to it.
#pragma once

#include <dlfcn.h>

#include <cstddef>

namespace rsr::cold {

// `*out` = the library's symbol `name`; false when it has none.
template <class F>
bool bind_symbol(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

// Allocation on the private heap, counted so the engine can report what it holds.
void* heap_alloc(size_t n);
void heap_free(void* p);

// Loads mimalloc (through librsrmem-heap.so, beside this library or on the loader's path) into
// hot::g_private. False (and the private heap unusable) when it cannot be loaded.
bool load_private_heap();
// Loads libunwind and installs its unw_backtrace into the stack capture. False when missing.
bool load_unwinder();

// Bytes the engine holds on its private heap now (usable sizes of its live blocks).
size_t private_heap_bytes();

}  // namespace rsr::cold
