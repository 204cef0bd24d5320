// Dispatch: hand every op, in order, to its handler (input.cpp decides when).
// Registered routing ids get their session; others may only REGISTER.
#include <google/protobuf/unknown_field_set.h>
#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

void Protocol::dispatch_op(const std::string& peer, const PeerMeta& meta, v1::Op& op) {
  if (Session* s = sessions_.find(peer)) {
    if (op.body_case() != v1::Op::kPublish && op.body_case() != v1::Op::kHeartbeat &&
        op.body_case() != v1::Op::kPong) {
      // Requests other than PUBLISH spend the name's work budget; the
      // handlers add what they scan.
      op_work_ += 5;
      if (!charge_work(*s, 5, request_id_of(op), op_name(op.body_case()))) return;
    }
    on_op_registered(*s, op);
  } else {
    on_op_unregistered(peer, meta, op);
  }
}

bool Protocol::charge_work(Session& s, double units, std::uint64_t request_id,
                           const char* answers) {
  NameState& ns = *s.ns;
  const std::int64_t now = now_ms_;
  if (ns.work.available(now)) {
    ns.work.spend(now, units);
    return true;
  }
  ++counters_.budget_refused;
  ++s.busy_refused_pending;
  s.busy_answers = answers;
  // Coalesced: at most one ERROR per ~100 ms per session, carrying the count
  // (report_refusals() sends what is still owed).
  if (now - s.busy_error_ms >= 100) {
    report_refusals_of(s, now, request_id);
  } else {
    refusals_owed_.insert(s.id);
  }
  return false;
}

void Protocol::report_refusals_of(Session& s, std::int64_t now, std::uint64_t request_id) {
  if (s.busy_refused_pending) {
    s.busy_error_ms = now;
    const std::string count = std::to_string(s.busy_refused_pending);
    audit("work_budget", s.name,
          {{"name", s.name},
           {"fp", s.fingerprint},
           {"op", s.busy_answers},
           {"refused", count, true}});
    send_error(s, v1::ERROR_BUSY, request_id,
               "the work budget of '" + s.name + "' (" + std::to_string(config_.work_budget) +
                   " units/s) is spent; " + count + " request(s) refused, retry later",
               "", s.busy_answers.c_str(), s.busy_refused_pending);
    s.busy_refused_pending = 0;
  }
  if (s.rate_refused_pending) {
    s.rate_error_ms = now;
    const std::string count = std::to_string(s.rate_refused_pending);
    std::uint64_t suppressed = 0;
    if (log_rate_.allow(suppressed))
      spdlog::warn("rate limited name={} session={} refused={}{}", s.name, s.session_id, count,
                   suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    audit("rate_limited", s.name,
          {{"name", s.name}, {"fp", s.fingerprint}, {"refused", count, true}});
    send_error(s, v1::ERROR_RATE_LIMITED, request_id,
               "publish rate of '" + s.name + "' over " + std::to_string(config_.publish_rate) +
                   "/s; " + count + " publication(s) refused",
               "", "publish", s.rate_refused_pending);
    s.rate_refused_pending = 0;
  }
}

void Protocol::report_refusals(std::int64_t now) {
  if (refusals_owed_.empty()) return;
  for (auto it = refusals_owed_.begin(); it != refusals_owed_.end();) {
    Session* s = sessions_.find(*it);
    if (!s) {
      it = refusals_owed_.erase(it);
      continue;
    }
    const bool busy_due = s->busy_refused_pending && now - s->busy_error_ms >= 100;
    const bool rate_due = s->rate_refused_pending && now - s->rate_error_ms >= 100;
    if (busy_due || rate_due) report_refusals_of(*s, now, 0);
    if (s->busy_refused_pending || s->rate_refused_pending)
      ++it;
    else
      it = refusals_owed_.erase(it);
  }
}

void Protocol::denied(Session& s, const char* op, const std::string& topic) {
  ++counters_.denials;
  std::uint64_t suppressed = 0;
  if (log_denied_.allow(suppressed))
    spdlog::warn("acl denied op={} name={} fp={} topic=\"{}\"{}", op, s.name, s.fingerprint,
                 printable(topic),
                 suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
  audit("acl_denied", s.name,
        {{"name", s.name}, {"fp", s.fingerprint}, {"op", op}, {"topic", topic}});
}

void Protocol::deny(Session& s, const char* op, const std::string& topic, std::uint64_t request_id,
                    const std::string& message, v1::ErrorCode code) {
  denied(s, op, topic);
  send_error(s, code, request_id, message, is_valid_utf8(topic) ? topic : std::string(), op);
}

void Protocol::malformed(const std::string& routing_id, std::size_t bytes, std::uint64_t request_id,
                         const char* answers, const std::string& message) {
  ++counters_.malformed;
  Session* s = sessions_.find(routing_id);
  if (s)
    audit("malformed", s->name,
          {{"name", s->name}, {"answers", answers}, {"bytes", std::to_string(bytes), true}});
  std::uint64_t suppressed = 0;
  if (log_bad_input_.allow(suppressed))
    spdlog::warn("malformed input bytes={} answers={} name={}{}", bytes, printable(answers, 64),
                 s ? s->name : "(unregistered)",
                 suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
  if (s)
    send_error(*s, v1::ERROR_MALFORMED, request_id, message, "", answers);
  else
    reply_unregistered(routing_id, v1::ERROR_MALFORMED, message, answers, request_id);
}

void Protocol::diagnose_bad_op(const std::string& routing_id, const std::string& bytes) {
  // Op is a oneof: one length-delimited field whose number names the op.
  google::protobuf::UnknownFieldSet op_fields, body_fields;
  std::uint64_t request_id = 0;
  const char* answers = "op";
  bool bad_text = false;
  if (op_fields.ParseFromString(bytes) && op_fields.field_count() > 0) {
    const auto& f = op_fields.field(op_fields.field_count() - 1);
    // Only a field number Op declares names an op: casting any other number
    // to BodyCase would be undefined (found by fuzz_dispatch under UBSan).
    if (v1::Op::descriptor()->FindFieldByNumber(f.number()) != nullptr)
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
  Session* s = sessions_.find(routing_id);
  if (bad_text && s) {
    send_error(*s, v1::ERROR_INVALID_TOPIC, request_id, "text is not valid UTF-8", "", answers);
    return;
  }
  malformed(routing_id, bytes.size(), request_id, answers,
            bad_text ? "text is not valid UTF-8" : "undecodable op");
}

void Protocol::on_op_unregistered(const std::string& routing_id, const PeerMeta& meta, v1::Op& op) {
  const v1::ErrorCode* tomb = sessions_.tombstone_of(routing_id);
  if (tomb && *tomb == v1::ERROR_REVOKED) {
    reply_unregistered(routing_id, v1::ERROR_REVOKED, "this key was revoked",
                       op_name(op.body_case()), request_id_of(op));
    return;
  }
  if (tomb && *tomb == v1::ERROR_IDENTITY) {
    // A routing id another key's session used: nothing more is served on it.
    reply_unregistered(routing_id, v1::ERROR_IDENTITY,
                       "this connection took over another key's routing id; reconnect",
                       op_name(op.body_case()), request_id_of(op));
    return;
  }
  switch (op.body_case()) {
    case v1::Op::kRegister:
      handle_register(routing_id, meta, op.register_(), nullptr);
      return;
    case v1::Op::kBye:
      return;  // nothing to close
    default:
      break;
  }
  if (tomb && *tomb == v1::ERROR_SESSION_EXPIRED) {
    reply_unregistered(routing_id, v1::ERROR_SESSION_EXPIRED,
                       "the broker timed this session out; REGISTER again", op_name(op.body_case()),
                       request_id_of(op));
    return;
  }
  reply_unregistered(routing_id, v1::ERROR_NOT_REGISTERED, "REGISTER first",
                     op_name(op.body_case()), request_id_of(op));
}

void Protocol::reply_unregistered(const std::string& routing_id, v1::ErrorCode code,
                                  const std::string& message, const char* answers,
                                  std::uint64_t request_id) {
  // At most a few answers per second per routing id, so bad input cannot be
  // amplified into traffic.
  if (!sessions_.may_answer_unregistered(routing_id, now_ms_)) return;
  v1::Op op;
  auto* e = op.mutable_error();
  e->set_request_id(request_id);
  e->set_code(code);
  e->set_message(message);
  e->set_answers(answers);
  if (sessions_.write(routing_id, encode_op(op), 1) != PeerWriter::Result::kSent) return;
  ++counters_.errors_sent;
  spdlog::debug("error to unregistered peer code={} answers={}", error_code_name(code), answers);
}

void Protocol::on_op_registered(Session& s, v1::Op& op) {
  switch (op.body_case()) {
    case v1::Op::kRegister:
      handle_register(s.peer, PeerMeta{}, op.register_(), &s);
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
                    printable(op.bye().reason(), 128));
      close_session(s, CloseReason::kClosed,
                    op.bye().reason().empty() ? "bye" : op.bye().reason().substr(0, 256));
      return;
    default:
      send_error(
          s, v1::ERROR_UNSUPPORTED, request_id_of(op),
          std::string("the broker does not serve '") + op_name(op.body_case()) + "' from peers", "",
          op_name(op.body_case()));
      return;
  }
}

void Protocol::send_control(Session& s, const v1::Op& op) {
  sessions_.control(s, encode_op(op), op_name(op.body_case()));
}

void Protocol::send_error(Session& s, v1::ErrorCode code, std::uint64_t request_id,
                          const std::string& message, const std::string& topic, const char* answers,
                          std::uint64_t count) {
  v1::Op op;
  auto* e = op.mutable_error();
  e->set_request_id(request_id);
  e->set_code(code);
  e->set_message(message);
  e->set_topic(topic);
  e->set_answers(answers);
  e->set_count(count);
  ++counters_.errors_sent;
  send_control(s, op);
}

void Protocol::spend_work(Session& s, double units) {
  op_work_ += units;
  s.ns->work.spend(now_ms_, units);
}

}  // namespace curvebus::broker
