// Incoming messages: decode the frame, then hand every op, in order, to its
// handler.  Registered routing ids get their session; others may only
// REGISTER.
#include <google/protobuf/unknown_field_set.h>
#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxUnregisteredTracked = 10000;

// The request id of a request op (0 for ops without one).
std::uint64_t request_id_of(const v1::Op& op) {
  switch (op.body_case()) {
    case v1::Op::kRegister:
      return op.register_().request_id();
    case v1::Op::kSubscribe:
      return op.subscribe().request_id();
    case v1::Op::kUnsubscribe:
      return op.unsubscribe().request_id();
    case v1::Op::kPublish:
      return op.publish().request_id();
    case v1::Op::kPull:
      return op.pull().request_id();
    case v1::Op::kTopics:
      return op.topics().request_id();
    case v1::Op::kAdmin:
      return op.admin().request_id();
    default:
      return 0;
  }
}

}  // namespace

void Core::on_message(const std::string& routing_id, const zmq::message_t& body) {
  ++counters_.messages_in;
  counters_.bytes_in += body.size();
  if (Session* session = find_session(routing_id)) {
    // Any message is an alive signal.
    session->last_seen_ms = steady_ms();
    session->pinged = false;
    ++session->messages_in;
    // Fast path: a frame of PUBLISH ops only (the bulk of the traffic) is
    // read in place, without building protobuf messages.
    if (scan_publish_frame(body.data(), body.size(), publish_views_)) {
      for (const PublishView& p : publish_views_) handle_publish(*session, p);
      return;
    }
  }
  frame_.Clear();
  if (decode_frame(body.data(), body.size(), frame_)) {
    for (int i = 0; i < frame_.ops_size(); ++i)
      dispatch_op(routing_id, body, *frame_.mutable_ops(i));
    return;
  }
  // Slow path: split the frame into its ops without a schema, so the valid
  // ops are still served in order and each bad one gets its own answer
  // (INVALID_TOPIC for text that is not UTF-8, MALFORMED otherwise).
  google::protobuf::UnknownFieldSet fields;
  const bool split = body.size() > 0 && body.size() < static_cast<std::size_t>(INT32_MAX) &&
                     fields.ParseFromArray(body.data(), static_cast<int>(body.size())) &&
                     fields.field_count() > 0;
  bool all_ops = split;
  for (int i = 0; split && i < fields.field_count(); ++i)
    all_ops = all_ops && fields.field(i).number() == 1 &&
              fields.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED;
  if (!all_ops) {
    malformed(routing_id, body.size(), 0, "frame",
              "not a curvebus v1 Frame (" + std::to_string(body.size()) + " bytes)");
    return;
  }
  for (int i = 0; i < fields.field_count(); ++i) {
    const std::string& bytes = fields.field(i).length_delimited();
    v1::Op op;
    if (op.ParseFromString(bytes)) {
      dispatch_op(routing_id, body, op);
      continue;
    }
    diagnose_bad_op(routing_id, bytes);
  }
}

void Core::dispatch_op(const std::string& routing_id, const zmq::message_t& body, v1::Op& op) {
  if (Session* s = find_session(routing_id))
    on_op_registered(*s, op);
  else
    on_op_unregistered(routing_id, body, op);
}

void Core::malformed(const std::string& routing_id, std::size_t bytes, std::uint64_t request_id,
                     const char* answers, const std::string& message) {
  ++counters_.malformed;
  Session* s = find_session(routing_id);
  std::uint64_t suppressed = 0;
  if (log_bad_input_.allow(suppressed))
    spdlog::warn("malformed input bytes={} answers={} name={}{}", bytes, answers,
                 s ? s->name : "(unregistered)",
                 suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
  if (s)
    send_error(*s, v1::ERROR_MALFORMED, request_id, message, "", answers);
  else
    reply_unregistered(routing_id, v1::ERROR_MALFORMED, message, answers, request_id);
}

void Core::diagnose_bad_op(const std::string& routing_id, const std::string& bytes) {
  // Op is a oneof: one length-delimited field whose number names the op.
  google::protobuf::UnknownFieldSet op_fields, body_fields;
  std::uint64_t request_id = 0;
  const char* answers = "op";
  bool bad_text = false;
  if (op_fields.ParseFromString(bytes) && op_fields.field_count() > 0) {
    const auto& f = op_fields.field(op_fields.field_count() - 1);
    answers = op_name(static_cast<v1::Op::BodyCase>(f.number()));
    if (f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED &&
        body_fields.ParseFromString(f.length_delimited())) {
      for (int j = 0; j < body_fields.field_count(); ++j) {
        const auto& b = body_fields.field(j);
        if (b.number() == 1 && b.type() == google::protobuf::UnknownField::TYPE_VARINT)
          request_id = b.varint();
        const bool payload = f.number() == v1::Op::kPublish && b.number() == 3;  // bytes
        if (!payload && b.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED &&
            !is_valid_utf8(b.length_delimited()))
          bad_text = true;
      }
    }
  }
  Session* s = find_session(routing_id);
  if (bad_text && s) {
    send_error(*s, v1::ERROR_INVALID_TOPIC, request_id, "text is not valid UTF-8", "", answers);
    return;
  }
  malformed(routing_id, bytes.size(), request_id, answers,
            bad_text ? "text is not valid UTF-8" : "undecodable op");
}

void Core::on_op_unregistered(const std::string& routing_id, const zmq::message_t& body,
                              v1::Op& op) {
  auto tomb = tombstones_.find(routing_id);
  if (tomb != tombstones_.end() && tomb->second == v1::ERROR_REVOKED) {
    reply_unregistered(routing_id, v1::ERROR_REVOKED, "this key was revoked",
                       op_name(op.body_case()), request_id_of(op));
    return;
  }
  switch (op.body_case()) {
    case v1::Op::kRegister:
      handle_register(routing_id, body, op.register_(), nullptr);
      return;
    case v1::Op::kBye:
      return;  // nothing to close
    default:
      break;
  }
  if (tomb != tombstones_.end() && tomb->second == v1::ERROR_SESSION_EXPIRED) {
    reply_unregistered(routing_id, v1::ERROR_SESSION_EXPIRED,
                       "the broker timed this session out; REGISTER again", op_name(op.body_case()),
                       request_id_of(op));
    return;
  }
  reply_unregistered(routing_id, v1::ERROR_NOT_REGISTERED, "REGISTER first",
                     op_name(op.body_case()), request_id_of(op));
}

void Core::reply_unregistered(const std::string& routing_id, v1::ErrorCode code,
                              const std::string& message, const char* answers,
                              std::uint64_t request_id) {
  // At most a few answers per second per routing id, so bad input cannot be
  // amplified into traffic.
  if (unregistered_limit_.size() > kMaxUnregisteredTracked) unregistered_limit_.clear();
  auto it = unregistered_limit_.find(routing_id);
  if (it == unregistered_limit_.end())
    it = unregistered_limit_.emplace(routing_id, TokenBucket(5, 5)).first;
  if (!it->second.take(steady_ms())) return;
  v1::Op op;
  auto* e = op.mutable_error();
  e->set_request_id(request_id);
  e->set_code(code);
  e->set_message(message);
  e->set_answers(answers);
  const std::string bytes = encode_op(op);
  if (zmq_send(router_.handle(), routing_id.data(), routing_id.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) <
      0)
    return;
  zmq_send(router_.handle(), bytes.data(), bytes.size(), ZMQ_DONTWAIT);
  ++counters_.errors_sent;
  ++counters_.frames_out;
  ++counters_.messages_out;
  counters_.bytes_out += bytes.size();
  spdlog::debug("error to unregistered peer code={} answers={}", error_code_name(code), answers);
}

void Core::on_op_registered(Session& s, v1::Op& op) {
  switch (op.body_case()) {
    case v1::Op::kRegister:
      handle_register(s.routing_id, zmq::message_t(), op.register_(), &s);
      return;
    case v1::Op::kSubscribe:
      handle_subscribe(s, op.subscribe());
      return;
    case v1::Op::kUnsubscribe:
      handle_unsubscribe(s, op.unsubscribe());
      return;
    case v1::Op::kPublish:
      handle_publish(s, op.publish());
      return;
    case v1::Op::kPull:
      handle_pull(s, op.pull());
      return;
    case v1::Op::kTopics:
      handle_topics(s, op.topics());
      return;
    case v1::Op::kAdmin:
      handle_admin(s, op.admin());
      return;
    case v1::Op::kHeartbeat:
    case v1::Op::kPong:
      return;  // last_seen already refreshed
    case v1::Op::kPing: {
      v1::Op reply;
      reply.mutable_pong()->set_nonce(op.ping().nonce());
      send_control(s, reply);
      return;
    }
    case v1::Op::kBye:
      spdlog::debug("bye name={} session={} reason=\"{}\"", s.name, s.session_id,
                    op.bye().reason());
      drop_session(s, CloseReason::kClosed, op.bye().reason().empty() ? "bye" : op.bye().reason());
      return;
    default:
      send_error(
          s, v1::ERROR_UNSUPPORTED, request_id_of(op),
          std::string("the broker does not serve '") + op_name(op.body_case()) + "' from peers", "",
          op_name(op.body_case()));
      return;
  }
}

}  // namespace curvebus::broker
