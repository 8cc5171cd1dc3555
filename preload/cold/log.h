// One-line diagnostics on stderr ("rsrmem[pid]: ..."), formatted on the stack and written with
// write(2): usable before anything else is ready.
#pragma once

namespace rsr::cold {

enum class Level { kError = 0, kWarn = 1, kInfo = 2 };

void set_log_level(const char* name);
void log(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace rsr::cold
