// Reads a profiling capture file (common/capture.md) into a ProfileModel for one view.
//
// The file is streamed: zstd frames are decompressed piece by piece, records decoded as they
// complete, and events replayed in file order, which the library makes time order
// (capture_replay.h). What stays in memory is the blocks live at that point, the (size, stack)
// pairs with their totals, the threads, and the stacks' raw addresses; the events themselves are
// not kept.
//
// The file is untrusted (captures are mailed and attached to tickets): only a regular file is
// read, and what it may cost in decompression and memory grows with its size
// (capture_limits.h). A file that ends inside a frame or record, whose data stops
// decompressing, that declares a record larger than a record may be, or that reaches a limit, is
// read up to the last complete record and reported as truncated (ProfileModel::file_truncated,
// a warning saying why).
//
// Stacks are symbolized with a Symbolizer built from the capture's MODULE records, inlined calls
// are expanded into frames of their own, and leading frames of the allocation API and of
// librsrmem are dropped so that frame 0 is the allocation's caller; stacks that become equal are
// merged.
//
// Not thread-safe: one call builds one model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "profile_model.h"

namespace rsr::ctl {

struct CaptureReadOptions {
  ProfileView view = ProfileView::kAll;
  // Called as the file is read with the bytes read so far and the file's size; may be empty.
  std::function<void(uint64_t done, uint64_t total)> progress;
  // Fill ProfileModel::uses (allocations by stack, thread and time), as the flamegraph page needs.
  bool uses = false;
};

// Throws CtlError: kExitNotFound when the file is missing, cannot be opened (permissions) or is
// not a regular file (a FIFO, a device, a directory; also through a symlink); kExitUsage when it
// is not a capture (no RSRMCAPT magic), has a version or compression this rsrmemctl does not
// know, or has no readable HEADER record.
ProfileModel read_capture(const std::string& path, const CaptureReadOptions& options = {});

// Index of the power-of-two size bucket of `size` (ProfileModel::size_histogram): 0 for 0,
// otherwise the bit width, so bucket k holds [2^(k-1), 2^k).
int size_bucket(uint64_t size);

}  // namespace rsr::ctl
