// Counters, status and client views (admin replies) and the periodic
// $SYS/broker/stats publication.
#include "core.hpp"

namespace curvebus::broker {

void Core::fill_counters(v1::Counters& c) const {
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
  c.set_retained_saves(k.retained_saves);
  if (retained_log_) {
    const auto rs = retained_log_->stats();
    c.set_retained_saves(rs.syncs);
    c.set_retained_save_failures(rs.failures);
  }
  c.set_identity_mismatches(k.identity_mismatches);
  c.set_routing_ids_refused(k.routing_ids_refused);
  c.set_budget_refused(k.budget_refused);
  c.set_quota_refused(k.quota_refused);
  c.set_sessions_refused(k.sessions_refused);
  c.set_topics_freed(k.topics_freed);
  c.set_stored_bytes(stored_bytes_);
  c.set_input_deferred(k.input_deferred);
  if (audit_) {
    c.set_audit_events(audit_->stats().events);
    c.set_audit_aggregated(audit_->stats().aggregated);
  }
}

void Core::fill_status(v1::BrokerStatus& st) const {
  st.set_version(broker_version());
  st.set_broker_id(broker_id_);
  st.set_started_us(started_us_);
  st.set_uptime_ms(static_cast<std::uint64_t>((now_us() - started_us_) / 1000));
  st.set_peers(static_cast<std::uint32_t>(sessions_.size()));
  st.set_topics(static_cast<std::uint32_t>(topics_.size()));
  st.set_endpoint(endpoint());
  fill_counters(*st.mutable_counters());
}

void Core::fill_client_info(const Session& s, v1::ClientInfo& info) const {
  const std::int64_t at_ms = now_ms();
  const std::int64_t at_us = now_us();
  info.set_name(s.name);
  info.set_role(s.role);
  info.set_session_id(s.session_id);
  info.set_address(s.address);
  info.set_connected_us(s.connected_us);
  info.set_last_seen_us(at_us - (at_ms - s.alive.last_seen_ms) * 1000);
  info.set_heartbeat_state(s.alive.pinged ? "pinged" : "alive");
  for (const auto& p : s.subscriptions) info.add_subscriptions(p);
  info.set_queue_depth(static_cast<std::uint32_t>(s.pending_ops()));
  info.set_dropped(s.dropped);
  info.set_messages_in(s.messages_in);
  info.set_messages_out(s.messages_out);
  info.set_key_fingerprint(s.fingerprint);
  info.set_client_name(s.client_name);
  info.set_listener(listener_endpoint(s.routing_id));
}

void Core::run_stats(std::int64_t now) {
  if (!next_stats_ms_ || now < next_stats_ms_) return;
  next_stats_ms_ = now + config_.stats_interval_s * 1000LL;
  v1::BrokerStatus st;
  fill_status(st);
  publish_sys("$SYS/broker/stats", to_json(st));
}

}  // namespace curvebus::broker
