// Built with -gsplit-dwarf: its DWARF lives in a .dwo file that libdw opens by itself, from a
// name in the library, when it first looks at the library's code.
extern "C" __attribute__((noinline)) int rsrtest_split_function(volatile int* sink) {
  *sink = *sink + 1;
  return *sink * 3;
}
