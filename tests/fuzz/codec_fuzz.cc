// libFuzzer target for the control-protocol codec. Built only with clang (tests/fuzz/meson.build):
//   CXX=clang++ CC=clang meson setup build-fuzz && meson compile -C build-fuzz fuzz-codec
//   ./build-fuzz/tests/fuzz/fuzz-codec tests/fuzz/corpus -max_total_time=60
#include "codec_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rsr_fuzz::check_codec_input(data, size);
  return 0;
}
