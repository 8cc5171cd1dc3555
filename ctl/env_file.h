// `rsrmemctl run --env-file F`: reads KEY=VALUE settings (scripts/env.template is one).
//
// Syntax, one setting per line:
//   # comment                    blank lines and whole-line comments are skipped
//   KEY=value                    KEY is [A-Za-z_][A-Za-z0-9_]*; blanks around '=' are allowed
//   export KEY=value             the shell's "export " prefix is accepted
//   KEY=value  # comment         a '#' after a blank starts a comment in an unquoted value
//   KEY="value # not a comment"  double quotes: \" \\ \n \t escapes; single quotes: literal
// Anything else (no '=', a bad key, an unterminated quote, text after a closing quote) is an
// error naming file:line. Later lines override earlier ones (with a warning).
//
// Warnings (not errors): keys that are not rsrmem settings, RSR_* keys no setting matches (a
// typo), and values an rsrmem setting would reject (the service would use the default).
//
// Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rsr::ctl {

struct EnvEntry {
  std::string key;
  std::string value;
  int line = 0;
};

struct EnvFile {
  std::vector<EnvEntry> entries;  // in file order, one per key (the last assignment wins)
  std::vector<std::string> warnings;
};

// Parses `text` as the contents of `name` (used in messages). Throws CtlError(kExitUsage) with
// "name:line: what is wrong" for the first malformed line.
EnvFile parse_env_file(std::string_view text, const std::string& name);

// Reads and parses `path`, a regular file of at most 1 MiB. Throws CtlError(kExitNotFound) when
// it cannot be read, is not a regular file (a FIFO, a device, a directory) or is larger.
EnvFile load_env_file(const std::string& path);

}  // namespace rsr::ctl
