// Standard containers on the engine's private heap. Everything under preload/cold/ allocates
// through these and runs with the thread's guard held, so even a stray libc allocation (inside
// realpath, say) lands on the private heap (hot/private.h), never on the service's.
#pragma once

#include <cstddef>
#include <new>
#include <string>
#include <vector>

#include "private_libs.h"

namespace rsr::cold {

template <class T>
struct HeapAllocator {
  using value_type = T;
  HeapAllocator() noexcept = default;
  template <class U>
  HeapAllocator(const HeapAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    void* p = heap_alloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { heap_free(p); }
  template <class U>
  bool operator==(const HeapAllocator<U>&) const noexcept { return true; }
};

// Constructs a T on the private heap; throws std::bad_alloc when the heap is exhausted.
template <class T>
T* heap_new() {
  void* p = heap_alloc(sizeof(T));
  if (!p) throw std::bad_alloc();
  return new (p) T();
}

template <class T>
void heap_delete(T* p) {
  if (!p) return;
  p->~T();
  heap_free(p);
}

using String = std::basic_string<char, std::char_traits<char>, HeapAllocator<char>>;
template <class T>
using Vector = std::vector<T, HeapAllocator<T>>;

}  // namespace rsr::cold
