#include "log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace rsr::cold {
namespace {
Level g_level = Level::kWarn;
}

void set_log_level(const char* name) {
  if (std::strcmp(name, "error") == 0) g_level = Level::kError;
  else if (std::strcmp(name, "info") == 0) g_level = Level::kInfo;
  else g_level = Level::kWarn;
}

void log(Level level, const char* fmt, ...) {
  if (static_cast<int>(level) > static_cast<int>(g_level)) return;
  const int saved = errno;
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "rsrmem[%d]: ", static_cast<int>(getpid()));
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - static_cast<size_t>(n) - 1, fmt, ap);
  va_end(ap);
  if (n > static_cast<int>(sizeof buf) - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, static_cast<size_t>(n));
  (void)ignored;
  errno = saved;
}

}  // namespace rsr::cold
