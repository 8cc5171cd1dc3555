// rsrmem control protocol: one definition shared by librsrmem.so and rsrmemctl.
//
// A connection carries frames. A frame is a fixed 12-byte header followed by `length` bytes of
// payload; every integer is little-endian:
//
//   offset 0  magic    "RSRM"
//   offset 4  version  u16   kProtocolVersion (a peer refuses any other)
//   offset 6  kind     u16   Kind below
//   offset 8  length   u32   payload bytes; at most kMaxRequestBytes for a request and
//                            kMaxResponseBytes for a response
//
// The payload is one UTF-8 JSON object. A request names its command in "cmd" and carries its
// arguments beside it: {"cmd":"summary","top":20}. A response is {"ok":true,...}; a refusal is a
// frame of kind kError whose payload is {"ok":false,"error":"<message>"}. One request, one
// response, then the server closes the connection. New commands and new fields are added
// without changing the version; a peer ignores fields it does not know. The version changes only
// when the frame layout or the meaning of an existing field changes.
//
// Commands (version 1): "hello", "status", "health", "summary", "update_metrics". Their replies
// are documented beside their handlers in preload/cold/handlers.cpp.
//
// This header and protocol.cc allocate nothing, so the preload may use them anywhere.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rsr::proto {

inline constexpr char kMagic[4] = {'R', 'S', 'R', 'M'};
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHeaderBytes = 12;
inline constexpr uint32_t kMaxRequestBytes = 64 * 1024;
inline constexpr uint32_t kMaxResponseBytes = 256u * 1024 * 1024;

enum class Kind : uint16_t { kRequest = 1, kResponse = 2, kError = 3 };

struct FrameHeader {
  uint16_t version = kProtocolVersion;
  Kind kind = Kind::kRequest;
  uint32_t length = 0;
};

enum class DecodeStatus { kOk, kShort, kBadMagic, kBadVersion, kBadKind, kTooLarge };

// Writes the 12-byte header for a frame of `kind` carrying `length` payload bytes.
void encode_header(Kind kind, uint32_t length, uint8_t out[kHeaderBytes]);

// Parses a header from `n` bytes at `in`. `max_length` is the largest payload the reader accepts.
DecodeStatus decode_header(const uint8_t* in, size_t n, uint32_t max_length, FrameHeader* out);

// A short human-readable description of a decode failure.
const char* describe(DecodeStatus s);

// Control sockets are the files "<pid>.sock" of the socket directory (config.h, socket_dir_for):
// the pid in decimal, no leading zero. The pid a file name stands for, or 0 for any other name.
pid_t socket_name_pid(std::string_view file_name);

}  // namespace rsr::proto
