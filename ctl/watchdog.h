// --timeout as a bound on the whole of a command that talks to processes: connecting, waiting,
// reading the reply, and the work done here on it (symbolizing its stacks, reading module
// files). The client's own deadline ends a slow socket with a precise message; the watchdog ends
// whatever else runs past the deadline: it prints "rsrmemctl: timed out after S s (--timeout)
// ..." on stderr and exits with 4 at once (_exit: nothing half-done is flushed).
//
// main() arms it for the commands that query processes and then end (not run, serve or push,
// which run for as long as they are told). The deadline starts at `timeout` from arming and is
// renewed for each process queried (collect() in command_support.cc), so with --all every
// process gets its own --timeout, and each query with what follows it ends within --timeout
// plus a quarter of a second of grace (for the client's message to win when it is the socket
// that is slow). Without arm(), every call is a no-op.
//
// Thread-safe; one watchdog per process (its thread is started once and never joined).
#pragma once

#include <chrono>
#include <string>

namespace rsr::ctl::watchdog {

// Starts watching: the command must end within `timeout`.
void arm(std::chrono::milliseconds timeout);

// A new deadline, `timeout` from now, while doing `what` ("querying pid 1234 (/run/x.sock)").
void renew(std::chrono::milliseconds timeout, const std::string& what);

}  // namespace rsr::ctl::watchdog
