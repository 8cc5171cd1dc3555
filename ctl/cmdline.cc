#include "cmdline.h"

#include <cstring>

namespace rsr::ctl {

SplitCommandLine split_at_double_dash(int argc, const char* const* argv) {
  SplitCommandLine out;
  int i = 0;
  for (; i < argc; ++i) {
    if (i > 0 && std::strcmp(argv[i], "--") == 0) {
      out.has_separator = true;
      ++i;
      break;
    }
    out.options.emplace_back(argv[i]);
  }
  for (; i < argc; ++i) out.command.emplace_back(argv[i]);
  return out;
}

}  // namespace rsr::ctl
