// Counters, status and client views (admin replies) and the periodic
// $SYS/broker/stats publication.
#include "protocol.hpp"

namespace curvebus::broker {

void Protocol::fill_counters(v1::Counters& c) const {
  const Counters& k = counters_;
  c.set_messages_in(k.messages_in);
  c.set_messages_out(k.messages_out);
  c.set_bytes_in(k.bytes_in);
  c.set_bytes_out(k.bytes_out);
  c.set_publications(k.publications);
  c.set_deliveries(k.deliveries);
  c.set_dropped(k.dropped);
  c.set_denials(k.denials);
  c.set_errors_sent(k.errors_sent);
  c.set_malformed(k.malformed);
  c.set_oversized(k.oversized);
  c.set_rate_limited(k.rate_limited);
  c.set_handshake_failures(k.handshake_failures);
  c.set_auth_denied(k.auth_denied);
  c.set_sessions_opened(k.sessions_opened);
  c.set_sessions_timed_out(k.sessions_timed_out);
  c.set_frames_out(k.frames_out);
  if (const RetainedLog* log = topics_.retained_log()) {
    const auto rs = log->stats();
    c.set_retained_saves(rs.syncs);
    c.set_retained_save_failures(rs.failures);
  }
  c.set_identity_mismatches(k.identity_mismatches);
  c.set_routing_ids_refused(k.routing_ids_refused);
  c.set_budget_refused(k.budget_refused);
  c.set_quota_refused(k.quota_refused);
  c.set_sessions_refused(k.sessions_refused);
  c.set_topics_freed(k.topics_freed);
  c.set_stored_bytes(names_.stored_bytes());
  c.set_input_deferred(k.input_deferred);
  c.set_audit_events(audit_.stats().events);
  c.set_audit_aggregated(audit_.stats().aggregated);
}

void Protocol::fill_status(v1::BrokerStatus& st) const {
  st.set_version(broker_version());
  st.set_broker_id(facts_.broker_id);
  st.set_started_us(facts_.started_us);
  st.set_uptime_ms(static_cast<std::uint64_t>((now_us_ - facts_.started_us) / 1000));
  st.set_peers(static_cast<std::uint32_t>(sessions_.size()));
  st.set_topics(static_cast<std::uint32_t>(topics_.size()));
  if (facts_.listeners && !facts_.listeners->empty())
    st.set_endpoint(facts_.listeners->front().endpoint);
  fill_counters(*st.mutable_counters());
}

void Protocol::fill_client_info(const Session& s, v1::ClientInfo& info) const {
  const std::int64_t at_ms = now_ms_;
  const std::int64_t at_us = now_us_;
  info.set_name(s.name);
  info.set_role(s.role);
  info.set_session_id(s.session_id);
  info.set_address(s.address);
  info.set_connected_us(s.connected_us);
  info.set_last_seen_us(at_us - (at_ms - s.alive.last_seen_ms) * 1000);
  info.set_heartbeat_state(s.alive.pinged ? "pinged" : "alive");
  for (const auto& p : s.subscriptions) info.add_subscriptions(p);
  info.set_queue_depth(static_cast<std::uint32_t>(s.outbox.ops()));
  info.set_dropped(s.outbox.dropped());
  info.set_messages_in(s.messages_in);
  info.set_messages_out(s.outbox.ops_sent());
  info.set_key_fingerprint(s.fingerprint);
  info.set_client_name(s.client_name);
  info.set_listener(listener_endpoint(s.peer));
}

const std::string& Protocol::listener_endpoint(const std::string& peer) const {
  static const std::string none;
  if (!facts_.listeners || peer.empty()) return none;
  const auto index = static_cast<std::size_t>(static_cast<unsigned char>(peer.front()) - '0');
  return index < facts_.listeners->size() ? (*facts_.listeners)[index].endpoint : none;
}

}  // namespace curvebus::broker
