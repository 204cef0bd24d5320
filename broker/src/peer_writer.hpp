// PeerWriter: where the broker core's output goes — one ZeroMQ message (a
// batch of encoded frames) to one peer.
//
// Every byte the core sends goes through SessionTable::write(), which calls its
// PeerWriter and counts what left (frames_out, messages_out, bytes_out) in
// one place.  The real writer (RouterWriter) writes the listeners' ROUTER
// sockets; the in-process harness records (testing/harness.hpp).
//
// A peer is named by its session-table key: one listener tag byte, then the
// ROUTER's routing id (Core::peer_id()).
//
// Thread: the routing thread only.  A writer outlives the core that uses it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

namespace curvebus::broker {

class PeerWriter {
 public:
  enum class Result {
    kSent,        // the message was taken whole
    kWouldBlock,  // the peer's pipe is full (EAGAIN): nothing taken, try again later
    kGone,        // no such peer (EHOSTUNREACH): the connection is gone, nothing taken
    kFailed,      // anything else (error() says what): nothing taken
  };
  virtual ~PeerWriter() = default;
  virtual Result write(const std::string& peer, std::string_view message) = 0;
  // What the last kFailed was, for the log.
  virtual std::string error() const { return {}; }
};

// One bound ROUTER socket with its own server key.  A second listener serves
// the next broker key during a key rotation; sessions remember theirs.
struct Listener {
  zmq::socket_t router;
  zmq::socket_t monitor;  // its socket monitor (handshakes, connections)
  std::string endpoint;
  std::string server_fp;  // fingerprint of the server key it serves
  // The listeners of one endpoint, one per I/O thread (core.cpp): indexes
  // [first_shard, first_shard + shards) of the core's listeners.
  std::size_t first_shard = 0, shards = 1;
  // The listening socket the broker made and handed to the ROUTER
  // (ZMQ_USE_FD), or -1 when libzmq made its own (accept_registry.hpp).
  int listen_fd = -1;
  // When Core::drain_listener last read while the turn's budget was spent.
  std::int64_t starved_read_ms = 0;
};

// Writes to the ROUTER of the listener named by the peer's tag byte, never
// blocking (ROUTER_MANDATORY: a full pipe is EAGAIN, an unknown routing id
// EHOSTUNREACH).  Holds a reference to the core's listeners.
class RouterWriter final : public PeerWriter {
 public:
  explicit RouterWriter(std::vector<Listener>& listeners) : listeners_(listeners) {}
  Result write(const std::string& peer, std::string_view message) override;
  std::string error() const override;

 private:
  std::vector<Listener>& listeners_;
  int errno_ = 0;
};

}  // namespace curvebus::broker
