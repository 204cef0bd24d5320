// The alive signal, driven by a min-heap of per-session check times: each
// session is looked at about twice per interval, never scanned every turn,
// so thousands of idle peers cost little.
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/broker/liveness.hpp"

namespace curvebus::broker {

void Core::schedule(Session& s, std::int64_t due_ms) {
  s.next_check_ms = due_ms;
  timers_.emplace(due_ms, s.id);
}

void Core::run_liveness(std::int64_t now) {
  while (!timers_.empty() && timers_.top().first <= now) {
    const auto [due, id] = timers_.top();
    timers_.pop();
    Session* s = find_session(id);
    if (!s || s->next_check_ms != due) continue;  // stale entry
    LivenessInput in;
    in.now_ms = now;
    in.last_seen_ms = s->last_seen_ms;
    in.last_sent_ms = s->last_sent_ms;
    in.interval_ms = s->heartbeat_ms;
    in.pinged = s->pinged;
    in.output_pending = s->has_output();
    const LivenessDecision d = liveness_step(in);
    if (d.state == LivenessState::kExpired) {
      tombstone(s->routing_id, v1::ERROR_SESSION_EXPIRED);
      drop_session(*s, CloseReason::kTimeout,
                   "silent for " + std::to_string(now - s->last_seen_ms) + " ms");
      continue;
    }
    if (d.send_ping) {
      s->pinged = true;
      v1::Op op;
      op.mutable_ping()->set_nonce(++s->ping_nonce);
      send_control(*s, op);
      spdlog::debug("ping name={} session={} silent_ms={}", s->name, s->session_id,
                    now - s->last_seen_ms);
    }
    if (d.send_heartbeat) {
      v1::Op op;
      op.mutable_heartbeat();
      send_control(*s, op);
    }
    schedule(*s, d.next_check_ms);
  }
}

}  // namespace curvebus::broker

namespace curvebus::broker {

// Keys with a not_after: a min-heap of (expiry, session), so a session is cut
// when its key's validity ends, without scanning sessions.
void Core::run_key_expiry(std::int64_t) {
  if (expiry_.empty()) return;
  const std::int64_t now_us = wall_clock_us();
  while (!expiry_.empty() && expiry_.top().first <= now_us) {
    const auto [due, id] = expiry_.top();
    expiry_.pop();
    Session* s = find_session(id);
    if (!s || s->key_not_after_us != due) continue;  // gone, or key validity changed
    audit("session_cut", s->name,
          {{"name", s->name}, {"fp", s->fingerprint}, {"reason", "key expired"}});
    spdlog::warn("session cut name={} fp={} session={}: key expired", s->name, s->fingerprint,
                 s->session_id);
    send_error(*s, v1::ERROR_KEY_EXPIRED, 0, "this session's key reached its not_after", "",
               "session");
    tombstone(s->routing_id, v1::ERROR_KEY_EXPIRED);
    drop_session(*s, CloseReason::kKeyExpired, "key expired");
  }
}

}  // namespace curvebus::broker
