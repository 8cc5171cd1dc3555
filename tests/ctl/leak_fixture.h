// Stacks of real allocations made through the C++ standard library, for the tests of how a call
// site is named (the first frame of the service's own code). Each function grows a std::vector
// whose allocator records the return addresses above it with backtrace(3), then returns them,
// innermost first, starting with the allocator's caller: the std:: code.
//
// leak_fixture.cc is built twice:
//   leakfixture_o0, built -O0 -g: every std:: function is a frame of its own, so the stack
//     starts with several std:: frames, then rsrtest::register_session.
//   leakfixture_o2, built -O2 -g: std::vector::push_back is inlined into
//     rsrtest::store_session, so one frame holds an inlined std:: call inside user code.
#pragma once

#include <cstdint>
#include <vector>

namespace rsrtest {

std::vector<uint64_t> o0_allocation_stack();
extern int o0_push_line;  // line of the push_back call in register_session

std::vector<uint64_t> o2_allocation_stack();
extern int o2_push_line;  // line of the push_back call in store_session

}  // namespace rsrtest
