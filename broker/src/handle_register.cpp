// REGISTER: open a session for an authenticated routing id.  The name comes
// from the ZAP User-Id of the message, never from the request.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/certificate.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxProvides = 64;

v1::Role role_from_acl(const std::string& role) {
  if (role == "provider") return v1::ROLE_PROVIDER;
  if (role == "agent") return v1::ROLE_AGENT;
  return v1::ROLE_CLIENT;
}

}  // namespace

void Core::handle_register(const std::string& routing_id, const zmq::message_t& body,
                           const v1::Register& req, Session* existing) {
  const std::int64_t now = steady_ms();
  Session* s = existing;
  if (!s) {
    const char* user = zmq_msg_gets(body.handle(), "User-Id");
    if (!user || !*user) {
      reply_unregistered(routing_id, v1::ERROR_INTERNAL, "no authenticated identity", "register",
                         req.request_id());
      return;
    }
    const std::string name = user;
    const AclEntry* entry = acl_.by_name(name);
    if (!entry || revoked_names_.count(name)) {
      tombstone(routing_id, v1::ERROR_REVOKED);
      reply_unregistered(routing_id, v1::ERROR_REVOKED, "this key was revoked", "register",
                         req.request_id());
      return;
    }
    auto owned = std::make_unique<Session>();
    s = owned.get();
    s->id = next_session_++;
    s->routing_id = routing_id;
    s->session_id = broker_id_.substr(0, 8) + "-" + std::to_string(s->id);
    s->name = name;
    s->rights = *entry;
    s->fingerprint = key_fingerprint(entry->public_key);
    if (const char* addr = zmq_msg_gets(body.handle(), "Peer-Address")) s->address = addr;
    s->connected_us = wall_clock_us();
    s->publish_bucket = TokenBucket(config_.publish_rate, config_.publish_burst);
    s->last_seen_ms = now;
    s->last_sent_ms = now;
    tombstones_.erase(routing_id);
    unregistered_limit_.erase(routing_id);
    by_routing_id_[routing_id] = s->id;
    ++sessions_per_name_[name];
    ++counters_.sessions_opened;
    sessions_.emplace(s->id, std::move(owned));
  }
  s->role = req.role() == v1::ROLE_UNSPECIFIED ? role_from_acl(s->rights.role) : req.role();
  s->client_name = req.client_name().substr(0, 128);
  const std::uint32_t requested = req.heartbeat_ms() ? req.heartbeat_ms() : config_.heartbeat_ms;
  s->heartbeat_ms = std::clamp(requested, config_.min_heartbeat_ms, config_.max_heartbeat_ms);
  s->provides.clear();
  for (const auto& t : req.provides()) {
    if (s->provides.size() >= kMaxProvides) break;
    if (check_topic(t, topic_rules_).empty()) s->provides.push_back(t);
  }
  schedule(*s, now + s->heartbeat_ms);

  v1::Op op;
  auto* r = op.mutable_registered();
  r->set_request_id(req.request_id());
  r->set_session_id(s->session_id);
  r->set_name(s->name);
  r->set_heartbeat_ms(s->heartbeat_ms);
  r->set_timeout_ms(s->heartbeat_ms * 3);
  r->set_broker_version(broker_version());
  r->set_broker_id(broker_id_);
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
      "session open name={} fp={} role={} session={} address={} heartbeat_ms={} client=\"{}\" "
      "version=\"{}\"",
      s->name, s->fingerprint, v1::Role_Name(s->role), s->session_id, s->address, s->heartbeat_ms,
      s->client_name, req.client_version().substr(0, 64));
  publish_presence(*s, true, CloseReason::kClosed);
}

}  // namespace curvebus::broker
