// How call sites are named: qualified names from demangled signatures, what counts as runtime
// code, and the first user frame of real std:: allocation stacks (leak_fixture.h) and of an
// inlined user function (symbolizer_fixture.h). Also the sentence formatters check-leaks uses.
#include "site_stacks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <new>

#include "format.h"
#include "leak_fixture.h"
#include "module_map.h"
#include "symbolizer_fixture.h"

namespace {

using namespace rsr::ctl;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The modules holding `addresses`, each once.
std::vector<ModuleInfo> modules_for(const std::vector<uint64_t>& addresses) {
  std::map<std::string, ModuleInfo> by_path;
  for (uint64_t a : addresses) {
    const ModuleInfo m = rsrtest::module_of(reinterpret_cast<const void*>(a));
    if (!m.path.empty()) by_path[m.path] = m;
  }
  std::vector<ModuleInfo> out;
  for (auto& [path, m] : by_path) out.push_back(m);
  return out;
}

std::vector<const SymbolizedFrame*> symbolize_all(Symbolizer& s,
                                                  const std::vector<uint64_t>& addresses) {
  std::vector<const SymbolizedFrame*> frames;
  for (uint64_t a : addresses) frames.push_back(&s.symbolize(a));
  return frames;
}

// A return address inside libstdc++'s operator new, as the first frame of a stack whose
// allocation went through it.
uint64_t in_operator_new() {
  return reinterpret_cast<uint64_t>(static_cast<void* (*)(std::size_t)>(&::operator new)) + 1;
}

TEST(QualifiedName, StripsReturnTypeAndParameters) {
  EXPECT_EQ(qualified_name("register_session(int)"), "register_session");
  EXPECT_EQ(qualified_name("rsrtest::plain_function(int volatile*)"), "rsrtest::plain_function");
  EXPECT_EQ(qualified_name("void std::vector<long, std::allocator<long> >::_M_realloc_insert<long "
                           "const&>(__gnu_cxx::__normal_iterator<long*, std::vector<long, "
                           "std::allocator<long> > >, long const&)"),
            "std::vector<long, std::allocator<long> >::_M_realloc_insert<long const&>");
  EXPECT_EQ(qualified_name("std::pair<std::_Rb_tree_iterator<int>, bool> std::_Rb_tree<int, int, "
                           "std::_Identity<int>, std::less<int>, std::allocator<int> "
                           ">::_M_insert_unique<int>(int&&)"),
            "std::_Rb_tree<int, int, std::_Identity<int>, std::less<int>, std::allocator<int> "
            ">::_M_insert_unique<int>");
  EXPECT_EQ(qualified_name("operator new(unsigned long)"), "operator new");
  EXPECT_EQ(qualified_name("operator delete[](void*, unsigned long)"), "operator delete[]");
  EXPECT_EQ(qualified_name("Store::operator()(int) const"), "Store::operator()");
  EXPECT_EQ(qualified_name("Store::operator<(Store const&) const"), "Store::operator<");
  EXPECT_EQ(qualified_name("Store::operator<<(int)"), "Store::operator<<");
  EXPECT_EQ(qualified_name("Store::operator bool() const"), "Store::operator bool");
  EXPECT_EQ(qualified_name("(anonymous namespace)::Cache::put(int)"),
            "(anonymous namespace)::Cache::put");
  EXPECT_EQ(qualified_name("svc::handle(int)::{lambda(int)#1}::operator()(int) const"),
            "svc::handle");
  EXPECT_EQ(qualified_name("unsigned long svc::count<int>(int)"), "svc::count<int>");
  EXPECT_EQ(qualified_name("std::function<void (int)>::operator()(int) const"),
            "std::function<void (int)>::operator()");
  // An operator's template arguments after a space (the operator<< of every ostream write).
  EXPECT_EQ(qualified_name("bool std::operator< <char>(std::basic_string<char> const&, char const*)"),
            "std::operator< <char>");
  EXPECT_EQ(qualified_name("std::basic_ostream<char, std::char_traits<char> >& std::operator<< "
                           "<std::char_traits<char> >(std::basic_ostream<char, "
                           "std::char_traits<char> >&, char const*)"),
            "std::operator<< <std::char_traits<char> >");
  EXPECT_EQ(qualified_name("Foo::operator>(Foo const&) const"), "Foo::operator>");
  EXPECT_EQ(qualified_name("Foo::operator<=>(Foo const&) const"), "Foo::operator<=>");
  EXPECT_EQ(qualified_name("std::unique_ptr<Foo, std::default_delete<Foo> >::operator->() const"),
            "std::unique_ptr<Foo, std::default_delete<Foo> >::operator->");
  EXPECT_EQ(qualified_name("libsvc.so+0x1234"), "libsvc.so+0x1234");
  EXPECT_EQ(qualified_name("0x10"), "0x10");
  EXPECT_EQ(qualified_name("malloc"), "malloc");
}

TEST(RuntimeFunction, StandardLibraryAndAllocationApi) {
  for (const char* q :
       {"std::vector<int>::push_back", "std::__cxx11::basic_string<char>::_M_create",
        "__gnu_cxx::new_allocator<int>::allocate", "operator new", "operator new[]",
        "operator delete", "malloc", "calloc", "realloc", "posix_memalign", "strdup",
        "__cxa_allocate_exception", "__libc_malloc"})
    EXPECT_TRUE(is_runtime_function(q)) << q;
  for (const char* q :
       {"register_session", "svc::Store::add", "standard_thing", "stdio_wrapper", "mallocator::get",
        "(anonymous namespace)::Cache::put", "svc::operator new", "libsvc.so+0x1234"})
    EXPECT_FALSE(is_runtime_function(q)) << q;
}

TEST(SystemModule, LibcLibstdcxxLibgccLoader) {
  for (const char* m :
       {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib64/ld-linux-x86-64.so.2",
        "/opt/rsrmem/lib/librsrmem.so"})
    EXPECT_TRUE(is_system_module(m)) << m;
  for (const char* m : {"/usr/bin/svc", "/usr/lib/libcache.so.1", "/usr/lib/libcrypto.so.3"})
    EXPECT_FALSE(is_system_module(m)) << m;
}

TEST(FirstUserFrame, SkipsStdFramesAndSystemLibraries) {
  std::vector<uint64_t> stack = rsrtest::o0_allocation_stack();
  ASSERT_GT(stack.size(), 3u);
  stack.insert(stack.begin(), in_operator_new());
  Symbolizer symbolizer(modules_for(stack));
  const auto frames = symbolize_all(symbolizer, stack);
  // The stack really starts in libstdc++, then std:: code of the fixture, then the user's.
  EXPECT_THAT(frames[0]->module, HasSubstr("libstdc++"));
  EXPECT_THAT(frames[1]->function, HasSubstr("std::"));
  EXPECT_THAT(frames[1]->module, HasSubstr("libleakfixture_o0.so"));

  const UserFrame u = first_user_frame(frames);
  EXPECT_TRUE(u.found);
  EXPECT_FALSE(u.fallback);
  EXPECT_EQ(u.function, "rsrtest::register_session");
  EXPECT_EQ(base_name(u.file), "leak_fixture.cc");
  EXPECT_EQ(u.line, rsrtest::o0_push_line);
  EXPECT_THAT(u.module, HasSubstr("libleakfixture_o0.so"));
  EXPECT_GE(u.index, 3u);  // operator new and at least two std:: frames were passed over
  for (size_t i = 1; i < u.index; ++i)
    EXPECT_TRUE(is_runtime_function(qualified_name(frames[i]->function))) << frames[i]->function;
}

TEST(FirstUserFrame, InlinedStdCallInsideUserFunction) {
  const std::vector<uint64_t> stack = rsrtest::o2_allocation_stack();
  Symbolizer symbolizer(modules_for(stack));
  const auto frames = symbolize_all(symbolizer, stack);
  const UserFrame u = first_user_frame(frames);
  EXPECT_EQ(u.function, "rsrtest::store_session");
  EXPECT_EQ(base_name(u.file), "leak_fixture.cc");
  EXPECT_EQ(u.line, rsrtest::o2_push_line);
  // The frame it names holds std::vector code inlined into store_session.
  ASSERT_LT(u.index, frames.size());
  const SymbolizedFrame& f = *frames[u.index];
  ASSERT_FALSE(f.inlined.empty()) << f.function;
  EXPECT_THAT(f.inlined.front().function, StartsWith("std::"));
}

TEST(FirstUserFrame, InnermostInlinedUserFunctionWins) {
  volatile int sink = 0;
  const uint64_t address = reinterpret_cast<uint64_t>(rsrtest::outer_function(&sink));
  Symbolizer symbolizer(modules_for({address}));
  const UserFrame u = first_user_frame(symbolize_all(symbolizer, {address}));
  EXPECT_EQ(u.function, "rsrtest::inlined_helper");
  EXPECT_EQ(u.line, rsrtest::inlined_call_line);
  EXPECT_EQ(base_name(u.file), "symbolizer_fixture.cc");
}

TEST(FirstUserFrame, FallsBackToTheFirstFrame) {
  const std::vector<uint64_t> stack = {in_operator_new()};
  Symbolizer symbolizer(modules_for(stack));
  const UserFrame u = first_user_frame(symbolize_all(symbolizer, stack));
  EXPECT_TRUE(u.found);
  EXPECT_TRUE(u.fallback);
  EXPECT_EQ(u.index, 0u);
  EXPECT_THAT(u.function, StartsWith("operator new"));
  EXPECT_FALSE(first_user_frame({}).found);
}

TEST(FirstUserFrame, UnsymbolizedFrameOfTheServiceCounts) {
  Symbolizer symbolizer({});
  const UserFrame u = first_user_frame(symbolize_all(symbolizer, {0x10}));
  EXPECT_FALSE(u.fallback);
  EXPECT_EQ(u.function, "0x10");
}

TEST(SentenceFormat, Spans) {
  EXPECT_EQ(human_span(0), "0 seconds");
  EXPECT_EQ(human_span(1), "1 second");
  EXPECT_EQ(human_span(0.1), "0.1 seconds");
  EXPECT_EQ(human_span(1.04), "1 second");
  EXPECT_EQ(human_span(2.9), "2.9 seconds");
  EXPECT_EQ(human_span(9.97), "10 seconds");
  EXPECT_EQ(human_span(45), "45 seconds");
  EXPECT_EQ(human_span(59.97), "1 minute");
  EXPECT_EQ(human_span(60), "1 minute");
  EXPECT_EQ(human_span(90), "1.5 minutes");
  EXPECT_EQ(human_span(300), "5 minutes");
  EXPECT_EQ(human_span(300.4), "5 minutes");
  EXPECT_EQ(human_span(600), "10 minutes");
  EXPECT_EQ(human_span(742), "12 minutes");
  EXPECT_EQ(human_span(3600), "1 hour");
  EXPECT_EQ(human_span(5400), "1.5 hours");
  EXPECT_EQ(human_span(7200), "2 hours");
  EXPECT_EQ(human_span(86400), "1 day");
  EXPECT_EQ(human_span(3 * 86400), "3 days");
  EXPECT_EQ(human_span(-1), "?");
}

TEST(SentenceFormat, ShortBytes) {
  EXPECT_EQ(human_bytes_short(0), "0 B");
  EXPECT_EQ(human_bytes_short(512), "512 B");
  EXPECT_EQ(human_bytes_short(64 * 1024), "64.0 KiB");
  EXPECT_EQ(human_bytes_short(3.1 * 1024 * 1024), "3.1 MiB");
  EXPECT_EQ(human_bytes_short(6.8 * 1024 * 1024), "6.8 MiB");
  EXPECT_EQ(human_bytes_short(100.0 * 1024 * 1024), "100 MiB");
  EXPECT_EQ(human_bytes_short(812.0 * 1024 * 1024), "812 MiB");
  EXPECT_EQ(human_bytes_short(1023.99 * 1024), "1.0 MiB");
  EXPECT_EQ(human_bytes_short(1.5 * 1024 * 1024 * 1024), "1.5 GiB");
  EXPECT_EQ(human_bytes_short(-2048), "-2.0 KiB");
}

}  // namespace
