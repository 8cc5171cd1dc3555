// Control-protocol request handlers (replies documented in common/protocol.md).
#pragma once

#include <string_view>

#include "../../common/protocol.h"
#include "heap.h"

namespace rsr::cold {

// Answers one validated request (a JSON object with a "cmd" string) into `out`.
proto::Kind handle_request(std::string_view request, String& out);

}  // namespace rsr::cold
