// The control socket's connections, served concurrently by the control thread's event loop
// (server.cc): up to kMaxPeers at once, each with its own deadlines, all I/O non-blocking.
//
// A peer is accepted, checked (SO_PEERCRED), read until its request is complete (kRequestMs
// from the accept), answered (handle_request with g_cold.mutex held, the reply on the private
// heap) and written until done (kReplyMs), then closed. At the cap, a new connection evicts the
// oldest peer that has not completed a request (the oldest one writing a reply when none is
// reading), so idle or slow peers can never keep others out; a peer is safe from that for its
// first kEvictGraceMs, so that a client preempted between its connect and its write is not taken
// for an idle one (while every slot is in its grace, new connections wait in the backlog).
// Replies waiting for slow readers are bounded together (kMaxPendingReplyBytes): past that, the
// oldest such peer is dropped.
//
// Every descriptor here is an OwnedFd, checked before each use: one the program closed or
// replaced is forgotten, never read, written or closed.
//
// Threads: control thread only, except peers_fork_child (the child's only thread, at fork).
// Every private-heap use (request bodies, replies) happens with g_cold.mutex held.
#pragma once

#include <poll.h>

#include <cstdint>

#include "fds.h"

namespace rsr::cold {

inline constexpr int kMaxPeers = 32;
inline constexpr int64_t kRequestMs = 2000;
inline constexpr int64_t kReplyMs = 5000;
inline constexpr int64_t kEvictGraceMs = 50;
inline constexpr size_t kMaxPendingReplyBytes = size_t{32} << 20;

// Starts serving a connection just accepted (adopted, non-blocking): checks its credentials and
// reads what it already sent; may answer and close it at once. The owner and root may send any
// request, uids in RSR_ALLOWED_UIDS only queries; any other uid has its request read (into a
// scratch buffer) and refused, so that the client, done writing, gets the message.
void peers_add(OwnedFd fd, int64_t now_ms);

// Fills `fds` (room for kMaxPeers) with the peers still ours and what each waits for; returns
// how many. Peers found lost are dropped.
int peers_poll_set(pollfd* fds);
// Acts on what poll() reported for the set peers_poll_set() returned.
void peers_after_poll(const pollfd* fds, int n, int64_t now_ms);

// When a new connection can be taken: now_ms when a slot is free or may be freed, else when the
// first grace ends.
int64_t peers_room_at(int64_t now_ms);

// Closes peers past their deadline; the earliest deadline left (INT64_MAX when none).
int64_t peers_expire(int64_t now_ms);

// In a forked child: closes the child's copies of the parent's connections and frees their
// buffers (the parent keeps serving them).
void peers_fork_child();

}  // namespace rsr::cold
