// libunwind's memory-validation pipe, kept as a descriptor of the library's own (fds.h).
//
// libunwind (1.6, x86-64) opens a pipe when it initialises and, whenever DWARF unwinding fails
// and it falls back to frame-chain guessing, validates each address by reading a byte from the
// pipe's read end and writing the address's byte to its write end; when the read fails it closes
// both numbers and opens a new pipe. Born at the lowest free numbers (3 and 4), that pipe is
// exactly what a daemon closes and reuses: libunwind would then consume a byte of the daemon's
// socket, write into its file, or close it. The numbers live in a static array inside libunwind,
// which is found once (the one pair of ints that changes from {-1,-1} to a pipe's two ends when
// libunwind initialises) and rewritten to point at a pipe kept at high numbers.
#pragma once

namespace rsr::cold {

// Before libunwind's first use: notes where the array may be.
void unwinder_pipe_before_init(void* libunwind);
// After it (its first call opens the pipe): finds the array and moves the pipe to high numbers.
// Leaves things as they are when the array cannot be identified (libunwind already initialised
// by the program, another version).
void unwinder_pipe_after_init();

// Once a second: when the pipe is no longer the one the library put there (the program closed
// or reused a number, or libunwind opened a new pipe after a failed read), gives libunwind a
// fresh pipe at high numbers. Numbers the library did not open are never closed.
void unwinder_pipe_tick();

// Whether the pipe is managed (for status; false also when libunwind is not loaded).
bool unwinder_pipe_managed();

}  // namespace rsr::cold
