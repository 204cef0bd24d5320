#include "test_peer.hpp"

namespace curvebus::test {

TestPeer::TestPeer(zmq::context_t& ctx, const std::string& endpoint, const std::string& server_key,
                   const KeyPair& keys, int rcvhwm)
    : socket_(ctx, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  if (rcvhwm > 0) {
    socket_.set(zmq::sockopt::rcvhwm, rcvhwm);
    socket_.set(zmq::sockopt::rcvbuf, 4096);
  }
  socket_.set(zmq::sockopt::curve_serverkey, server_key);
  socket_.set(zmq::sockopt::curve_publickey, keys.public_key);
  socket_.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  socket_.connect(endpoint);
}

TestPeer::TestPeer(zmq::context_t& ctx, const std::string& endpoint)
    : socket_(ctx, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
}

void TestPeer::send(const v1::Op& op) {
  send_raw(encode_op(op));
}

void TestPeer::send_ops(const std::vector<v1::Op>& ops) {
  std::string bytes;
  for (const auto& op : ops) append_op(op, bytes);
  send_raw(bytes);
}

void TestPeer::send_raw(const std::string& bytes) {
  socket_.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
}

bool TestPeer::read_more(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return false;
  zmq::message_t msg;
  bool got = false;
  while (socket_.recv(msg, zmq::recv_flags::dontwait)) {
    v1::Frame frame;
    if (!decode_frame(msg.data(), msg.size(), frame)) continue;
    for (auto& op : *frame.mutable_ops()) {
      if (op.has_ping()) {
        ++pings_seen;
        if (auto_pong) {
          v1::Op pong;
          pong.mutable_pong()->set_nonce(op.ping().nonce());
          send(pong);
        }
      }
      pending_.push_back(std::move(op));
      got = true;
    }
  }
  return got;
}

std::optional<v1::Op> TestPeer::recv(std::chrono::milliseconds timeout) {
  return wait_for([](const v1::Op&) { return true; }, timeout);
}

std::optional<v1::Op> TestPeer::wait_for(const std::function<bool(const v1::Op&)>& pred,
                                         std::chrono::milliseconds timeout) {
  // Ops that do not match stay pending for later waits, in order.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;
  while (true) {
    for (; scanned < pending_.size(); ++scanned) {
      if (pred(pending_[scanned])) {
        v1::Op op = std::move(pending_[scanned]);
        pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(scanned));
        return op;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    read_more(left);
  }
}

std::optional<v1::Op> TestPeer::wait_for(v1::Op::BodyCase body, std::chrono::milliseconds timeout) {
  return wait_for([body](const v1::Op& op) { return op.body_case() == body; }, timeout);
}

std::optional<v1::Deliver> TestPeer::wait_deliver(const std::string& topic,
                                                  std::chrono::milliseconds timeout) {
  auto op = wait_for(
      [&](const v1::Op& o) { return o.has_deliver() && o.deliver().topic() == topic; }, timeout);
  if (!op) return std::nullopt;
  return op->deliver();
}

std::optional<v1::Op> TestPeer::answer(std::uint64_t request_id, v1::Op::BodyCase body,
                                       std::chrono::milliseconds timeout) {
  return wait_for(
      [&](const v1::Op& o) {
        if (o.has_error()) return o.error().request_id() == request_id || request_id == 0;
        return o.body_case() == body &&
               (answered_request_id(o) == request_id || answered_request_id(o) == 0);
      },
      timeout);
}

std::optional<v1::Op> TestPeer::register_peer(v1::Role role, std::uint32_t heartbeat_ms,
                                              std::chrono::milliseconds timeout) {
  v1::Op op;
  auto* r = op.mutable_register_();
  const std::uint64_t id = next_request_id();
  r->set_request_id(id);
  r->set_role(role);
  r->set_heartbeat_ms(heartbeat_ms);
  r->set_client_name("broker-test-peer");
  r->set_client_version("test");
  send(op);
  return answer(id, v1::Op::kRegistered, timeout);
}

std::optional<v1::Op> TestPeer::subscribe(const std::vector<std::string>& patterns,
                                          bool want_retained) {
  v1::Op op;
  auto* s = op.mutable_subscribe();
  const std::uint64_t id = next_request_id();
  s->set_request_id(id);
  for (const auto& p : patterns) s->add_patterns(p);
  s->set_want_retained(want_retained);
  send(op);
  return answer(id, v1::Op::kSuback);
}

std::optional<v1::Op> TestPeer::publish(const std::string& topic, const std::string& payload,
                                        bool ack, bool retain) {
  v1::Op op;
  auto* p = op.mutable_publish();
  const std::uint64_t id = next_request_id();
  p->set_request_id(id);
  p->set_topic(topic);
  p->set_payload(payload);
  p->set_ack(ack);
  p->set_retain(retain);
  send(op);
  return answer(id, v1::Op::kPuback);
}

void TestPeer::publish_nowait(const std::string& topic, const std::string& payload, bool retain) {
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic(topic);
  p->set_payload(payload);
  p->set_retain(retain);
  send(op);
}

std::optional<v1::Op> TestPeer::pull(const std::string& topic, std::uint64_t since_seq,
                                     std::uint32_t max_count) {
  v1::Op op;
  auto* p = op.mutable_pull();
  const std::uint64_t id = next_request_id();
  p->set_request_id(id);
  p->set_topic(topic);
  p->set_since_seq(since_seq);
  p->set_max_count(max_count);
  send(op);
  return answer(id, v1::Op::kPullReply);
}

std::optional<v1::Op> TestPeer::admin(v1::AdminCommand command, const std::string& argument) {
  v1::Op op;
  auto* a = op.mutable_admin();
  const std::uint64_t id = next_request_id();
  a->set_request_id(id);
  a->set_command(command);
  a->set_argument(argument);
  send(op);
  return answer(id, v1::Op::kAdminReply);
}

void TestPeer::bye(const std::string& reason) {
  v1::Op op;
  op.mutable_bye()->set_reason(reason);
  send(op);
}

}  // namespace curvebus::test
