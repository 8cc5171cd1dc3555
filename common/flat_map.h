// An open-addressing hash map (linear probing, backward-shift deletion: no tombstones) over
// caller-supplied memory functions, without exceptions, so the preload's writer thread can keep
// it on the private heap as rsrmemctl keeps it on its own. `Key{}` marks an empty slot and must
// never be inserted, and must be all zero bytes (empty slots are cleared with memset). Hash is a
// callable Key -> uint64_t.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace rsr {

struct Memory {
  void* (*alloc)(size_t);
  void (*release)(void*);
};

template <class Key, class Value, class Hash>
class FlatMap {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>);

 public:
  struct Slot {
    Key key;
    Value value;
  };

  explicit FlatMap(Memory m) : mem_(m) {}
  ~FlatMap() { mem_.release(slots_); }
  FlatMap(const FlatMap&) = delete;
  FlatMap& operator=(const FlatMap&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return mask_ ? mask_ + 1 : 0; }

  Value* find(const Key& k) {
    if (!slots_) return nullptr;
    for (size_t i = Hash{}(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i].value;
      if (slots_[i].key == Key{}) return nullptr;
    }
  }

  // The slot's value for `k`, inserted as `fresh` when absent; nullptr when memory ran out.
  Value* insert(const Key& k, const Value& fresh, bool* inserted = nullptr) {
    if ((size_ + 1) * 4 > capacity() * 3 && !grow()) return nullptr;
    size_t i = Hash{}(k) & mask_;
    for (; !(slots_[i].key == Key{}); i = (i + 1) & mask_) {
      if (slots_[i].key == k) {
        if (inserted) *inserted = false;
        return &slots_[i].value;
      }
    }
    slots_[i].key = k;
    slots_[i].value = fresh;
    ++size_;
    if (inserted) *inserted = true;
    return &slots_[i].value;
  }

  // Removes `k`; false when it was absent. `out` receives its value.
  bool erase(const Key& k, Value* out = nullptr) {
    if (!slots_) return false;
    size_t i = Hash{}(k) & mask_;
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].key == Key{}) return false;
      if (slots_[i].key == k) break;
    }
    if (out) *out = slots_[i].value;
    // Backward shift: later entries of the run move into the hole when their home allows it.
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      if (slots_[j].key == Key{}) break;
      const size_t home = Hash{}(slots_[j].key) & mask_;
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = Key{};
    --size_;
    return true;
  }

  template <class F>
  void for_each(F f) const {
    for (size_t i = 0; i < capacity(); ++i)
      if (!(slots_[i].key == Key{})) f(slots_[i].key, slots_[i].value);
  }

  void clear() {
    if (slots_) std::memset(static_cast<void*>(slots_), 0, capacity() * sizeof(Slot));
    size_ = 0;
  }

 private:
  bool grow() {
    const size_t n = capacity() ? capacity() * 2 : 64;
    Slot* fresh = static_cast<Slot*>(mem_.alloc(n * sizeof(Slot)));
    if (!fresh) return false;
    std::memset(static_cast<void*>(fresh), 0, n * sizeof(Slot));
    Slot* old = slots_;
    const size_t old_n = capacity();
    slots_ = fresh;
    mask_ = n - 1;
    for (size_t i = 0; i < old_n; ++i) {
      if (old[i].key == Key{}) continue;
      size_t j = Hash{}(old[i].key) & mask_;
      while (!(slots_[j].key == Key{})) j = (j + 1) & mask_;
      slots_[j] = old[i];
    }
    mem_.release(old);
    return true;
  }

  Memory mem_;
  Slot* slots_ = nullptr;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Fibonacci hashing of a 64-bit key, high bits folded down (the map masks the low ones).
struct MixHash {
  uint64_t operator()(uint64_t k) const {
    k *= 0x9E3779B97F4A7C15ULL;
    return k ^ (k >> 29);
  }
};

// A key of two words, and its hash.
struct KeyPair {
  uint64_t first, second;
  bool operator==(const KeyPair&) const = default;
};
struct KeyPairHash {
  uint64_t operator()(const KeyPair& k) const { return MixHash{}(k.first * 0x100000001B3ULL ^ k.second); }
};

}  // namespace rsr
