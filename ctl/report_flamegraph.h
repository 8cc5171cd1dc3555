// The `flamegraph` report: one self-contained interactive HTML file (inline CSS and JavaScript,
// no network access, no external fonts or scripts) drawing a ProfileModel's stacks as an icicle
// graph: the root at the top, each frame's callees below it, widths by bytes or, at the flip of a
// switch, by allocations.
//
// The page receives the model's call tree (call_tree.h: one node per distinct call path, never
// the raw stacks), its threads, its memory timeline and its uses (ProfileModel::uses: what each
// stack allocated on each thread in each span of time, and when it was freed), and draws only
// frames at least half a pixel wide.
//
// The page (ctl/page/flamegraph.{html,css,js}):
// - A chart of memory over the capture (the capture's live blocks; the process's heap and RSS).
//   Dragging across it picks a time range: the graph is redrawn for the allocations made in it
//   (--leaks: made in it and still live at its end), with the exact totals in #range-info and
//   #view-totals. "Whole capture" clears it.
// - A thread menu; an inverted view (each allocating function at the top, its callers below);
//   inlined library frames (std::, /usr/include) hidden unless asked for.
// - Frames labelled with shortened names (template arguments and parameters elided), the full
//   name in the tooltip with file:line, module, bytes, allocations and share.
// - Click to zoom (breadcrumb, "Reset zoom", Esc); search (substring or /regex/,
//   case-insensitive) highlights matching frames, dims the rest and says "N frames match, X% of
//   bytes" in #match-info.
// - The URL fragment keeps the state: #search=TEXT, #range=FROM-TO (seconds), #thread=TID, joined
//   with '&', so a link opens the page that way.
// - The header names the capture (id, service, program, pid), the view, when and how long, its
//   totals, and warns when the capture was truncated or dropped events.
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
