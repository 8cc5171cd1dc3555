// Exercises every operator new/delete variant and their edge cases; prints a deterministic
// transcript that must be identical with and without the preload.
#include <malloc.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "check.h"

namespace {

#define KEEP_ERRNO(name, stmt)                                               \
  do {                                                                       \
    errno = 1234;                                                            \
    stmt;                                                                    \
    check(errno == 1234, "errno-kept " name, "errno changed to %d", errno); \
  } while (0)

void touch(void* p, size_t n) { std::memset(p, 0x6B, n); }

void test_plain() {
  for (size_t n : {size_t{0}, size_t{1}, size_t{24}, size_t{100}, size_t{4096}, size_t{1} << 20}) {
    void* p;
    KEEP_ERRNO("new", p = ::operator new(n));
    check(p != nullptr && aligned_to(p, __STDCPP_DEFAULT_NEW_ALIGNMENT__), "new", "size %zu", n);
    check(malloc_usable_size(p) >= n, "new usable", "size %zu", n);
    touch(p, n);
    KEEP_ERRNO("delete", ::operator delete(p));

    KEEP_ERRNO("new sized-delete", p = ::operator new(n));
    touch(p, n);
    KEEP_ERRNO("delete sized", ::operator delete(p, n));

    KEEP_ERRNO("new[]", p = ::operator new[](n));
    check(p != nullptr, "new[]", "size %zu", n);
    touch(p, n);
    KEEP_ERRNO("delete[]", ::operator delete[](p));
    p = ::operator new[](n);
    KEEP_ERRNO("delete[] sized", ::operator delete[](p, n));

    KEEP_ERRNO("new nothrow", p = ::operator new(n, std::nothrow));
    check(p != nullptr, "new nothrow", "size %zu", n);
    touch(p, n);
    KEEP_ERRNO("delete nothrow", ::operator delete(p, std::nothrow));
    KEEP_ERRNO("new[] nothrow", p = ::operator new[](n, std::nothrow));
    check(p != nullptr, "new[] nothrow", "size %zu", n);
    KEEP_ERRNO("delete[] nothrow", ::operator delete[](p, std::nothrow));
  }
  // Deleting null is a no-op for every form.
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, std::nothrow);
  ::operator delete[](nullptr, std::nothrow);
  ::operator delete(nullptr, std::align_val_t(64));
  ::operator delete[](nullptr, std::align_val_t(64));
  check(true, "delete nullptr", "-");
}

void test_aligned() {
  for (size_t a : {size_t{16}, size_t{32}, size_t{64}, size_t{128}, size_t{256}, size_t{4096}, size_t{65536}}) {
    const std::align_val_t al{a};
    for (size_t n : {size_t{1}, size_t{100}, a * 3 + 1}) {
      void* p;
      KEEP_ERRNO("new aligned", p = ::operator new(n, al));
      check(p && aligned_to(p, a), "new aligned", "align %zu size %zu", a, n);
      check(malloc_usable_size(p) >= n, "new aligned usable", "align %zu", a);
      touch(p, n);
      KEEP_ERRNO("delete aligned", ::operator delete(p, al));

      p = ::operator new(n, al);
      KEEP_ERRNO("delete sized aligned", ::operator delete(p, n, al));

      KEEP_ERRNO("new[] aligned", p = ::operator new[](n, al));
      check(p && aligned_to(p, a), "new[] aligned", "align %zu", a);
      touch(p, n);
      KEEP_ERRNO("delete[] aligned", ::operator delete[](p, al));
      p = ::operator new[](n, al);
      KEEP_ERRNO("delete[] sized aligned", ::operator delete[](p, n, al));

      KEEP_ERRNO("new aligned nothrow", p = ::operator new(n, al, std::nothrow));
      check(p && aligned_to(p, a), "new aligned nothrow", "align %zu", a);
      KEEP_ERRNO("delete aligned nothrow", ::operator delete(p, al, std::nothrow));
      KEEP_ERRNO("new[] aligned nothrow", p = ::operator new[](n, al, std::nothrow));
      check(p && aligned_to(p, a), "new[] aligned nothrow", "align %zu", a);
      KEEP_ERRNO("delete[] aligned nothrow", ::operator delete[](p, al, std::nothrow));
    }
  }
}

struct alignas(256) Overaligned {
  char data[300];
};

struct Counted {
  static int live;
  std::string name;
  Counted() : name(40, 'c') { ++live; }
  ~Counted() { --live; }
};
int Counted::live = 0;

void test_expressions() {
  auto* o = new Overaligned;
  check(aligned_to(o, 256), "new-expression over-aligned", "-");
  delete o;
  auto* oa = new Overaligned[7];
  check(aligned_to(oa, 256), "new[]-expression over-aligned", "-");
  delete[] oa;
  auto* c = new Counted[13];  // array cookie + non-trivial destructor
  check(Counted::live == 13, "new[] constructs", "%d", Counted::live);
  delete[] c;
  check(Counted::live == 0, "delete[] destroys", "%d", Counted::live);
  auto* i = new int(7);
  delete i;
  auto* n = new (std::nothrow) int[100];
  check(n != nullptr, "nothrow new-expression", "-");
  delete[] n;
  auto sp = std::make_shared<std::string>(1000, 's');
  auto up = std::make_unique<Overaligned[]>(3);
  check(sp->size() == 1000 && aligned_to(up.get(), 256), "smart pointers", "-");
}

int g_handler_calls = 0;
void handler_then_give_up() {
  ++g_handler_calls;
  std::set_new_handler(nullptr);  // the next failure throws (or returns null for nothrow)
}

void test_failures() {
  const size_t huge = SIZE_MAX / 2;
  const char* what = "none";
  try {
    void* p = ::operator new(huge);
    ::operator delete(p);
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  printf("new(huge) -> %s\n", what);
  check(std::strcmp(what, "bad_alloc") == 0, "new(huge) throws bad_alloc", "%s", what);

  what = "none";
  try {
    void* p = ::operator new[](huge);
    ::operator delete[](p);
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  check(std::strcmp(what, "bad_alloc") == 0, "new[](huge) throws bad_alloc", "%s", what);

  what = "none";
  try {
    void* p = ::operator new(huge, std::align_val_t(64));
    ::operator delete(p, std::align_val_t(64));
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  check(std::strcmp(what, "bad_alloc") == 0, "new(huge, align) throws bad_alloc", "%s", what);

  what = "none";
  try {
    void* p = ::operator new[](huge, std::align_val_t(4096));
    ::operator delete[](p, std::align_val_t(4096));
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  check(std::strcmp(what, "bad_alloc") == 0, "new[](huge, align) throws bad_alloc", "%s", what);

  check(::operator new(huge, std::nothrow) == nullptr, "new(huge, nothrow) -> null", "-");
  check(::operator new[](huge, std::nothrow) == nullptr, "new[](huge, nothrow) -> null", "-");
  check(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr, "new(huge, align, nothrow) -> null", "-");
  check(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr, "new[](huge, align, nothrow) -> null",
        "-");

  // Array-length overflow in a new-expression.
  volatile size_t count = SIZE_MAX / 4;
  what = "none";
  try {
    auto* p = new int64_t[count];
    delete[] p;
  } catch (const std::bad_array_new_length&) {
    what = "bad_array_new_length";
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  printf("new int64_t[SIZE_MAX/4] -> %s\n", what);

  // operator new calls the new_handler before giving up; the preload must keep that behaviour.
  g_handler_calls = 0;
  std::set_new_handler(handler_then_give_up);
  what = "none";
  try {
    void* p = ::operator new(huge);
    ::operator delete(p);
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  printf("new(huge) with new_handler -> %s after %d handler call(s)\n", what, g_handler_calls);
  check(g_handler_calls == 1, "new_handler called by new", "%d calls", g_handler_calls);

  g_handler_calls = 0;
  std::set_new_handler(handler_then_give_up);
  void* p = ::operator new(huge, std::nothrow);
  printf("new(huge, nothrow) with new_handler -> %s after %d handler call(s)\n", p ? "pointer" : "null",
         g_handler_calls);
  check(g_handler_calls == 1, "new_handler called by nothrow new", "%d calls", g_handler_calls);

  g_handler_calls = 0;
  std::set_new_handler(handler_then_give_up);
  what = "none";
  try {
    void* q = ::operator new[](huge, std::align_val_t(128));
    ::operator delete[](q, std::align_val_t(128));
  } catch (const std::bad_alloc&) {
    what = "bad_alloc";
  }
  printf("new[](huge, align) with new_handler -> %s after %d handler call(s)\n", what, g_handler_calls);
  check(g_handler_calls == 1, "new_handler called by aligned new", "%d calls", g_handler_calls);
  std::set_new_handler(nullptr);
}

void test_library_churn() {
  uint64_t sum = 0;
  std::map<int, std::string> m;
  std::unordered_map<std::string, std::vector<int>> um;
  for (int i = 0; i < 20000; ++i) {
    m[i % 1500] = std::string(static_cast<size_t>(i % 300), static_cast<char>('a' + i % 26));
    um[std::to_string(i % 700)].push_back(i);
    if (i % 5 == 0) m.erase(i % 1300);
  }
  for (const auto& [k, v] : m) sum += static_cast<uint64_t>(k) * v.size();
  for (const auto& [k, v] : um) sum += v.size() * k.size();
  int caught = 0;
  for (int i = 0; i < 2000; ++i) {
    try {
      throw std::runtime_error(std::string(static_cast<size_t>(50 + i % 100), 'e'));
    } catch (const std::runtime_error& e) {
      caught += e.what()[0] == 'e';
    }
  }
  printf("library churn: checksum %llu, exceptions %d\n", static_cast<unsigned long long>(sum), caught);
  check(caught == 2000, "exceptions", "%d", caught);
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  test_plain();
  test_aligned();
  test_expressions();
  test_failures();
  test_library_churn();
  return finish();
}
