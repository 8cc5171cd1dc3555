// Functions with known source lines for the symbolizer test, built into a shared library with
// -O2 -g so that inlining really happens (see tests/ctl/meson.build).
#pragma once

namespace rsrtest {

// Each returns the return address of its call to a non-inlined leaf, i.e. an address inside
// itself, and sets the matching *_line variable to the source line of that call.
void* plain_function(volatile int* sink);
void* outer_function(volatile int* sink);  // the call sits in an always_inline helper

extern int plain_call_line;    // line of the call in plain_function
extern int inlined_call_line;  // line of the call inside the inlined helper
extern int outer_call_line;    // line in outer_function where the helper is inlined

}  // namespace rsrtest

extern "C" void* rsrtest_nodebug_function(volatile int* sink);  // built with -g0
