// The `flamegraph` report: one self-contained interactive HTML file (inline CSS and JavaScript,
// no network access, no external fonts or scripts) drawing a ProfileModel's stacks as an icicle
// graph: the root at the top, each frame's callees below it, widths by bytes or, at the flip of a
// switch, by allocations.
//
// The page receives the model's call tree (call_tree.h: one node per distinct call path, never
// the raw stacks) and draws only frames at least half a pixel wide.
//
// The page: click a frame to zoom into it (breadcrumb and "Reset zoom" to come back, Esc too); a
// search box (substring, or /regex/, case-insensitive) highlights matching frames and shows
// "N frames match, X% of bytes" in #match-info; a URL fragment #search=TEXT runs that search on
// load; a tooltip gives function, file:line, module, bytes, allocations and share; inlined frames
// are drawn in their own colour and said to be inlined. The header names the capture (id,
// service, program, pid), the view, when and how long, its totals, and warns when the capture
// was truncated or dropped events.
//
// Everything from the model travels as JSON in a <script type="application/json"> block with
// '<', '>' and '&' written as \u003c, \u003e and \u0026, so no function name can end the block or
// open markup, and the page puts text into the DOM with textContent only.
//
// A pure function of the model; safe from any thread for distinct streams.
#pragma once

#include <ostream>
#include <string>

#include "profile_model.h"

namespace rsr::ctl {

void write_flamegraph_html(const ProfileModel& model, std::ostream& out);

// The JSON the page embeds (already escaped for the script block); for tests.
std::string flamegraph_json(const ProfileModel& model);

}  // namespace rsr::ctl
