// Which files in a capture directory are rsrmem's own old captures: the one rule behind
// `rsrmemctl cleanup-profiles` and the library's automatic cleanup (RSR_PROFILING_CLEANUP_DAYS).
// No allocation, so the preload's writer thread uses it as rsrmemctl does.
#pragma once

#include <sys/stat.h>
#include <time.h>

namespace rsr::capture {

// A file seen as `.part` and modified within this many seconds is still being written.
inline constexpr time_t kPartQuietSeconds = 60;

// profile_*.bin, scope_*.bin, or *.bin.part.
bool capture_file_name(const char* name);

// True when `name`, directly in the directory `dfd` (never through a symbolic link), is a regular
// file with a capture file name that starts with the capture magic, was last modified before
// `cutoff` (unix seconds; HUGE_VAL takes every age) and, for a `.part` file, not within
// kPartQuietSeconds of `now`. Fills `st` (size, mtime) when true.
bool capture_file_expired(int dfd, const char* name, double cutoff, time_t now, struct stat* st);

}  // namespace rsr::capture
