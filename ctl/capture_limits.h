// What reading a capture file may cost. Captures are mailed and attached to tickets, so the
// reader treats every file as hostile: each declared length is checked against what can follow,
// and the work and memory a file can ask for grow with its size, not with what it declares.
//
// - A record is at most kMaxRecordBytes (the library writes records into 256 KiB frames), a zstd
//   frame's window at most 2^kMaxWindowLog bytes (the library's frames are at most 256 KiB).
// - Decompressed bytes: at most 32 MiB + 64 times the file's size. Real captures compress 2 to
//   10 times; a decompression bomb stops here, early.
// - Memory held while reading (live blocks, (size, stack) pairs, stacks, threads, modules): at
//   most 64 MiB + 256 times the file's size, by the estimate below. An ALLOC record is a few
//   bytes and a live block 24 (its map slot, at most four in three used), so a file whose every
//   allocation stays live compresses far less than 256 times before it reaches the limit.
// - What is left of that is shared by the symbolized stacks (a third, 64 MiB at least: the
//   symbolizer's names and the report's frames, largest stacks first; the rest of the view
//   becomes one stack marked as not symbolized) and the reports built from them (the other two
//   thirds, about twice the stacks).
// - A stack keeps at most kMaxStackFrames frames (the library captures at most 256), a thread
//   name kMaxNameBytes, and at most kMaxModules distinct modules are kept.
//
// Reaching a limit stops the reading like damage does: the reports cover what was read, and a
// warning says which limit and why. Pure values; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rsr::ctl::capture_limits {

inline constexpr uint64_t kMaxRecordBytes = 1 << 20;
inline constexpr int kMaxWindowLog = 20;
inline constexpr uint64_t kMaxStackFrames = 1024;
inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxModules = 8192;

inline constexpr uint64_t kDecompressedFloor = uint64_t{32} << 20;
inline constexpr uint64_t kDecompressedPerByte = 64;
inline constexpr uint64_t kMemoryFloor = uint64_t{64} << 20;
inline constexpr uint64_t kMemoryPerByte = 256;
// The least the symbolized stacks may take, whatever reading took: a few thousand deep stacks
// of long C++ names.
inline constexpr uint64_t kSymbolizedFloor = uint64_t{64} << 20;

// Estimated bytes held per item, allocator and hash-table overhead included.
inline constexpr uint64_t kStackCost = 160;        // raw frames' vector, per-view totals
inline constexpr uint64_t kFrameCost = 16;         // a raw address and its share of the slack
inline constexpr uint64_t kThreadCost = 160;
inline constexpr uint64_t kModuleCost = 256;

inline uint64_t decompressed_budget(uint64_t file_bytes) {
  return kDecompressedFloor + kDecompressedPerByte * file_bytes;
}
inline uint64_t memory_budget(uint64_t file_bytes) {
  return kMemoryFloor + kMemoryPerByte * file_bytes;
}

}  // namespace rsr::ctl::capture_limits
