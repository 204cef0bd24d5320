// The peer address of every TCP connection libzmq accepts, recorded at the
// moment of accept().
//
// libzmq's socket monitor names the broker's own endpoint in its events, not
// the peer; the peer can only be found from the descriptor in ACCEPTED, and a
// peer whose handshake fails (plaintext, garbage, wrong server key) is closed
// — its descriptor possibly reused by the next connection — long before the
// routing loop reads the event.  Asking the kernel then (getpeername) gives
// nothing, or another peer's address.  So the broker executable defines
// accept()/accept4() itself: the dynamic linker resolves libzmq's calls to
// them (an executable's definitions come first), they call the C library's
// and record (descriptor -> "address:port") before libzmq sees the
// descriptor.  The monitor takes the address of each ACCEPTED event in order.
//
// Thread-safe: accept runs on libzmq's I/O threads, take on the routing thread.
#pragma once

#include <string>

namespace curvebus::broker {

// The address recorded for the oldest accept of `fd` from the listening
// socket `listen_fd` not yet taken (from any listening socket when
// `listen_fd` < 0); empty when none was recorded (then the caller may fall
// back to getpeername).  Keyed by the listening socket too: two listeners'
// monitors are read apart, and a descriptor one listener's peer had closed
// could be accepted again by the other listener before the first listener's
// ACCEPTED was read, which then took the second peer's address.
std::string take_accepted_address(int listen_fd, int fd);

// True once an accept went through the recording wrappers in this process
// (false would mean the interposition is not in effect).
bool accept_registry_active();

}  // namespace curvebus::broker
