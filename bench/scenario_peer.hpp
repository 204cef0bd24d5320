// A raw v1 DEALER peer for the scenario benchmarks (latency, idle peers, slow
// subscriber): no client library in the path, as in throughput.cpp.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::bench {

using Clock = std::chrono::steady_clock;

inline KeyPair load_secret(const std::string& path) {
  auto cert = read_certificate(path, true);
  if (!cert) {
    std::fprintf(stderr, "bench: %s\n", cert.status().message().c_str());
    std::exit(1);
  }
  return cert->keys;
}

inline std::string load_server_key(const std::string& key) {
  auto server = resolve_public_key(key);
  if (!server) {
    std::fprintf(stderr, "bench: %s\n", server.status().message().c_str());
    std::exit(1);
  }
  return *server;
}

struct Peer {
  zmq::socket_t socket;
  std::uint64_t next_request = 1;
  Clock::time_point last_sent = Clock::now();

  Peer(zmq::context_t& ctx, const std::string& endpoint, const std::string& server,
       const KeyPair& keys, int hwm = 100000)
      : socket(ctx, zmq::socket_type::dealer) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvhwm, hwm);
    socket.set(zmq::sockopt::sndhwm, hwm);
    socket.set(zmq::sockopt::curve_serverkey, server);
    socket.set(zmq::sockopt::curve_publickey, keys.public_key);
    socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    socket.connect(endpoint);
  }
  bool send(const v1::Op& op, bool dontwait = false) {
    const std::string bytes = encode_op(op);
    last_sent = Clock::now();
    return socket
        .send(zmq::buffer(bytes), dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none)
        .has_value();
  }
  // Reads one message (waiting up to timeout_ms) and decodes it; false on timeout.
  bool recv(v1::Frame& frame, int timeout_ms) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) <= 0) return false;
    zmq::message_t msg;
    if (!socket.recv(msg, zmq::recv_flags::dontwait)) return false;
    return decode_frame(msg.data(), msg.size(), frame);
  }
  // Sends a request and waits for the op answering it (answers PING meanwhile).
  bool request(const v1::Op& op, v1::Op::BodyCase want, int timeout_ms, v1::Op* answer = nullptr) {
    send(op);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      v1::Frame f;
      if (!recv(f, 100)) continue;
      for (const auto& o : f.ops()) {
        if (o.has_ping()) pong(o.ping().nonce());
        if (o.body_case() == want) {
          if (answer) *answer = o;
          return true;
        }
        if (o.has_error()) {
          std::fprintf(stderr, "bench: broker error %s: %s\n",
                       error_code_name(o.error().code()).c_str(), o.error().message().c_str());
          return false;
        }
      }
    }
    return false;
  }
  // heartbeat_ms 0 = the broker's default interval.
  bool register_peer(const std::string& name, std::uint32_t heartbeat_ms = 0) {
    v1::Op op;
    op.mutable_register_()->set_request_id(next_request++);
    op.mutable_register_()->set_client_name(name);
    op.mutable_register_()->set_heartbeat_ms(heartbeat_ms);
    return request(op, v1::Op::kRegistered, 10000);
  }
  bool subscribe(const std::string& pattern) {
    v1::Op op;
    op.mutable_subscribe()->set_request_id(next_request++);
    op.mutable_subscribe()->add_patterns(pattern);
    return request(op, v1::Op::kSuback, 10000);
  }
  void pong(std::uint64_t nonce) {
    v1::Op op;
    op.mutable_pong()->set_nonce(nonce);
    send(op, true);
  }
  void heartbeat() {
    v1::Op op;
    op.mutable_heartbeat();
    send(op, true);
  }
};

// Percentile of a sorted sample (nearest rank).
template <typename V>
double percentile(const V& sorted, double p) {
  if (sorted.empty()) return 0;
  std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  if (rank >= sorted.size()) rank = sorted.size() - 1;
  return static_cast<double>(sorted[rank]);
}

}  // namespace curvebus::bench
