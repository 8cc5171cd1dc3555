// Control-protocol request handlers (replies documented in common/protocol.md).
#pragma once

#include <string_view>

#include "../../common/json.h"
#include "../../common/protocol.h"
#include "heap.h"

namespace rsr::cold {

// A call site as the `summary` reply shows it, and the module map; shared with leaks.cc.
void write_site(json::JsonWriter<String>& w, uint32_t index, double window_s);
void write_modules(json::JsonWriter<String>& w);

// Answers one validated request (a JSON object with a "cmd" string) into `out`.
proto::Kind handle_request(std::string_view request, String& out);

}  // namespace rsr::cold
