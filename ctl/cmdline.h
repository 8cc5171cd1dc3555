// Splitting rsrmemctl's command line before CLI11 sees it.
//
// CLI11 2.1.2 rejects `run -- ./svc -o y` (it treats what follows "--" as positionals of the
// subcommand and then refuses the unknown ones), so the first "--" is handled here: everything
// before it goes to CLI11, everything after it is the command to run, untouched.
#pragma once

#include <string>
#include <vector>

namespace rsr::ctl {

struct SplitCommandLine {
  std::vector<std::string> options;  // argv[0] and every argument before the first "--"
  std::vector<std::string> command;  // every argument after it (may be empty)
  bool has_separator = false;        // a "--" was present
};

SplitCommandLine split_at_double_dash(int argc, const char* const* argv);

}  // namespace rsr::ctl
