// A raw protocol peer for the broker's integration tests: a DEALER with CURVE
// client keys (or none, for the plaintext test) that sends v1 frames — or any
// bytes — and reads the broker's ops one by one.  It answers PING by itself
// unless told not to.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::test {

using namespace std::chrono_literals;

class TestPeer {
 public:
  // CURVE peer with `keys`; `server_key` is the broker's public key (Z85).
  // `rcvhwm` > 0 bounds what libzmq buffers for this peer (a slow reader).
  TestPeer(zmq::context_t& ctx, const std::string& endpoint, const std::string& server_key,
           const KeyPair& keys, int rcvhwm = 0);
  // Plaintext (NULL mechanism) peer.
  TestPeer(zmq::context_t& ctx, const std::string& endpoint);

  void send(const v1::Op& op);
  void send_ops(const std::vector<v1::Op>& ops);  // one frame, several ops
  void send_raw(const std::string& bytes);

  // Next op from the broker within `timeout` (the oldest pending one first).
  std::optional<v1::Op> recv(std::chrono::milliseconds timeout = 3000ms);
  // Next op satisfying `pred` within `timeout`; ops that do not match stay
  // pending (in order) for later calls.
  std::optional<v1::Op> wait_for(const std::function<bool(const v1::Op&)>& pred,
                                 std::chrono::milliseconds timeout = 3000ms);
  std::optional<v1::Op> wait_for(v1::Op::BodyCase body, std::chrono::milliseconds timeout = 3000ms);
  // Next DELIVER on `topic`.
  std::optional<v1::Deliver> wait_deliver(const std::string& topic,
                                          std::chrono::milliseconds timeout = 3000ms);

  // Request helpers: send and wait for the answer (or an ERROR).
  std::optional<v1::Op> register_peer(v1::Role role = v1::ROLE_CLIENT,
                                      std::uint32_t heartbeat_ms = 0,
                                      std::chrono::milliseconds timeout = 3000ms);
  std::optional<v1::Op> subscribe(const std::vector<std::string>& patterns,
                                  bool want_retained = false);
  std::optional<v1::Op> publish(const std::string& topic, const std::string& payload,
                                bool ack = true, bool retain = false);
  void publish_nowait(const std::string& topic, const std::string& payload, bool retain = false);
  std::optional<v1::Op> pull(const std::string& topic, std::uint64_t since_seq = 0,
                             std::uint32_t max_count = 0);
  std::optional<v1::Op> admin(v1::AdminCommand command, const std::string& argument = "");
  void bye(const std::string& reason = "done");

  bool auto_pong = true;
  std::uint64_t pings_seen = 0;
  std::uint64_t next_request_id() { return ++request_id_; }
  zmq::socket_t& socket() { return socket_; }

 private:
  bool read_more(std::chrono::milliseconds timeout);
  std::optional<v1::Op> answer(std::uint64_t request_id, v1::Op::BodyCase body,
                               std::chrono::milliseconds timeout = 3000ms);
  zmq::socket_t socket_;
  std::deque<v1::Op> pending_;
  std::uint64_t request_id_ = 0;
};

}  // namespace curvebus::test
