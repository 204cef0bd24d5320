// REGISTER: open a session for an authenticated connection.  The identity is
// the key libzmq proved in the handshake (the ZAP User-Id); the name, role
// and rights come from the allow-list entry of that key, never from the
// request.  Refused: connections that chose their own routing id, keys that
// are revoked or outside their validity, names over their session cap.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "curvebus/certificate.hpp"
#include "protocol.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxProvides = 64;

v1::Role role_from_acl(const std::string& role) {
  if (role == "provider") return v1::ROLE_PROVIDER;
  if (role == "agent") return v1::ROLE_AGENT;
  return v1::ROLE_CLIENT;
}

}  // namespace

void Protocol::handle_register(const std::string& peer, const PeerMeta& meta,
                               const v1::Register& req, Session* existing) {
  const std::int64_t now = now_ms_;
  Session* s = existing;
  if (!s) {
    if (meta.user.empty()) {
      reply_unregistered(peer, v1::ERROR_INTERNAL, "no authenticated identity", "register",
                         req.request_id());
      return;
    }
    const std::string fp = key_fingerprint(meta.user);
    const auto match = admission_.acl().by_key(meta.user);
    const std::string name = match.entry ? match.entry->name : "";
    if (meta.chose_routing_id) {
      // A routing id the peer picked could be another session's (a hijack)
      // or one libzmq is about to generate (a crash): never a session's.
      ++counters_.routing_ids_refused;
      audit("routing_id_chosen", name.empty() ? fp : name,
            {{"name", name}, {"fp", fp}, {"address", meta.address}});
      spdlog::warn("register refused: peer chose its own routing id name={} fp={} address={}", name,
                   fp, meta.address);
      reply_unregistered(peer, v1::ERROR_IDENTITY,
                         "curvebus refuses routing ids chosen by the peer: do not set "
                         "ZMQ_ROUTING_ID on the DEALER",
                         "register", req.request_id());
      return;
    }
    v1::ErrorCode code = v1::ERROR_REVOKED;
    if (std::string why = admission_.refusal(meta.user, "", now_us_, &code); !why.empty()) {
      sessions_.tombstone(peer, code);
      audit("register_refused", name.empty() ? fp : name,
            {{"name", name}, {"fp", fp}, {"reason", why}, {"address", meta.address}});
      reply_unregistered(peer, code, "this key may not connect: " + why, "register",
                         req.request_id());
      return;
    }
    NameState& ns = names_.get(name);
    if (ns.sessions >= config_.max_sessions_per_name) {
      ++counters_.sessions_refused;
      audit("session_limit", name,
            {{"name", name},
             {"fp", fp},
             {"address", meta.address},
             {"sessions", std::to_string(ns.sessions), true}});
      reply_unregistered(peer, v1::ERROR_RESOURCE_EXHAUSTED,
                         "'" + name + "' already holds " + std::to_string(ns.sessions) +
                             " sessions (max_sessions_per_name)",
                         "register", req.request_id());
      return;
    }
    s = &sessions_.open(peer);
    s->session_id = facts_.broker_id.substr(0, 8) + "-" + std::to_string(s->id);
    s->name = name;
    s->key = meta.user;
    s->key_not_after_us = match.key->not_after_us;
    s->ns = &ns;
    s->rights = *match.entry;
    s->fingerprint = fp;
    s->address = meta.address;
    s->connected_us = now_us_;
    ++ns.sessions;
    ++counters_.sessions_opened;
    sessions_.watch_key_expiry(*s);
  }
  // The role is the allow-list's: a peer cannot present itself as a robot.
  s->role = role_from_acl(s->rights.role);
  s->client_name = req.client_name().substr(0, 128);
  const std::uint32_t requested = req.heartbeat_ms() ? req.heartbeat_ms() : config_.heartbeat_ms;
  s->heartbeat_ms = std::clamp(requested, config_.min_heartbeat_ms, config_.max_heartbeat_ms);

  v1::Op op;
  auto* r = op.mutable_registered();
  // The directory lists a provider only for topics its ACL lets it publish.
  for (const auto& t : s->provides) topics_.remove_provider(t, s->name);
  s->provides.clear();
  for (const auto& t : req.provides()) {
    if (s->provides.size() >= kMaxProvides) {
      r->add_denied_provides(t);
      continue;
    }
    if (!check_topic(t, topic_rules_).empty() || !may_publish(s->rights, t)) {
      if (r->denied_provides_size() < 8)
        audit("provides_denied", s->name,
              {{"name", s->name}, {"fp", s->fingerprint}, {"topic", t}});
      r->add_denied_provides(is_valid_utf8(t) ? t : printable(t));
      continue;
    }
    s->provides.push_back(t);
  }
  for (const auto& t : s->provides) topics_.add_provider(t, s->name);
  sessions_.liveness().add(s->alive, s->heartbeat_ms, now);

  r->set_request_id(req.request_id());
  r->set_session_id(s->session_id);
  r->set_name(s->name);
  r->set_heartbeat_ms(s->heartbeat_ms);
  r->set_timeout_ms(s->heartbeat_ms * 3);
  r->set_broker_version(broker_version());
  r->set_broker_id(facts_.broker_id);
  r->set_role(s->role);
  auto* l = r->mutable_limits();
  l->set_max_message_bytes(config_.max_message_bytes);
  l->set_max_topic_bytes(config_.max_topic_bytes);
  l->set_max_topic_levels(config_.max_topic_levels);
  l->set_max_subscriptions(config_.max_subscriptions);
  l->set_publish_rate(config_.publish_rate);
  l->set_publish_burst(config_.publish_burst ? config_.publish_burst
                                             : std::max<std::uint32_t>(1, config_.publish_rate));
  l->set_history_depth(config_.history_depth);
  l->set_max_batch_bytes(config_.max_batch_bytes);
  send_control(*s, op);

  if (existing) {
    spdlog::debug("session re-register name={} session={}", s->name, s->session_id);
    return;
  }
  spdlog::info(
      "session open name={} fp={} role={} session={} address={} listener={} heartbeat_ms={} "
      "client=\"{}\" version=\"{}\"",
      s->name, s->fingerprint, v1::Role_Name(s->role), s->session_id, s->address,
      listener_endpoint(peer), s->heartbeat_ms, printable(s->client_name, 128),
      printable(req.client_version(), 64));
  publish_presence(*s, true, CloseReason::kClosed);
}

}  // namespace curvebus::broker
