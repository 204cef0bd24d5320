// The routing core's side of federation (federation_port.hpp): the export
// hook after an accepted publication, the import entry point, and the
// deferred PUBACK of a command that waits for its store.
#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

bool Protocol::export_publication(Session* s, std::uint64_t request_id, bool ack,
                                  const ExportedPublication& p, std::uint32_t delivered,
                                  std::uint32_t dropped) {
  const std::uint64_t token = next_store_token_++;
  const FederationPort::Export answer = federation_->exported(p, token);
  if ((answer == FederationPort::Export::kAwaitStore ||
       answer == FederationPort::Export::kUnavailable) &&
      s && has_local_agent(p.topic)) {
    // The robot is here: the command is local and answered as one; its copy
    // for the other sites is stored (or not) on the side.
    return true;
  }
  switch (answer) {
    case FederationPort::Export::kLocal:
    case FederationPort::Export::kSent:
      return true;
    case FederationPort::Export::kAwaitStore:
      if (s) {
        AwaitingStore& w = awaiting_store_[token];
        w.session = s->id;
        w.request_id = request_id;
        w.ack = ack;
        w.topic.assign(p.topic.data(), p.topic.size());
        w.seq = p.seq;
        w.delivered = delivered;
        w.dropped = dropped;
      }
      return false;
    case FederationPort::Export::kUnavailable:
      if (s)
        send_error(*s, v1::ERROR_FEDERATION_UNAVAILABLE, request_id,
                   "the command was not stored in the federation (the NATS backbone is not "
                   "reachable, or its JetStream streams are not set up yet); delivered here to " +
                       std::to_string(delivered) + " subscriber(s) only",
                   std::string(p.topic), "publish");
      return false;
  }
  return true;
}

bool Protocol::has_local_agent(std::string_view topic) {
  const Topic* t = topics_.find(std::string(topic));
  if (!t) return false;
  for (const SubscriberId id : t->subscribers) {
    const Session* peer = sessions_.find(id);
    if (peer && peer->role == v1::ROLE_AGENT) return true;
  }
  return false;
}

void Protocol::federation_stored(std::uint64_t token, bool stored, const std::string& why) {
  const auto it = awaiting_store_.find(token);
  if (it == awaiting_store_.end()) return;
  const AwaitingStore w = std::move(it->second);
  awaiting_store_.erase(it);
  Session* s = sessions_.find(w.session);
  if (!s) return;  // the publisher left; the store happened (or not) all the same
  if (!stored) {
    send_error(*s, v1::ERROR_FEDERATION_UNAVAILABLE, w.request_id,
               "the command was not stored in the federation (" + why + "); delivered here to " +
                   std::to_string(w.delivered) + " subscriber(s) only",
               w.topic, "publish");
    return;
  }
  if (!w.ack) return;
  v1::Op op;
  auto* ack = op.mutable_puback();
  ack->set_request_id(w.request_id);
  ack->set_topic(w.topic);
  ack->set_seq(w.seq);
  ack->set_delivered(w.delivered);
  ack->set_dropped(w.dropped);
  send_control(*s, op);
}

std::uint32_t Protocol::import_publication(const ImportedPublication& m) {
  std::uint32_t delivered = 0;
  if (std::string why = check_topic(m.topic, topic_rules_); !why.empty()) {
    std::uint64_t suppressed = 0;
    if (log_bad_input_.allow(suppressed))
      spdlog::warn("federation: imported topic refused here: {}", why);
  } else {
    NameState& ns = names_.get(m.publisher);
    const TopicTable::Published r = topics_.publish(m.topic, m.payload, ns, m.retain,
                                                    m.content_type, sessions_, now_ms_, now_us_);
    if (r.refusal != TopicTable::Refusal::kNone) {
      std::uint64_t suppressed = 0;
      if (log_bad_input_.allow(suppressed))
        spdlog::warn("federation: imported publication on {} from {} refused here (storage)",
                     m.topic, m.publisher);
    } else {
      delivered = r.delivered;
    }
  }
  if (m.command && federation_) federation_->import_done(m.handle, delivered);
  return delivered;
}

}  // namespace curvebus::broker
