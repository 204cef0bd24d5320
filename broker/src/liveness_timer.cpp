// The alive signal (liveness.hpp): what the broker does when LivenessTimers
// says a session is due, and key validity.
#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

const Bytes& heartbeat_frame() {
  static const Bytes frame = [] {
    v1::Op op;
    op.mutable_heartbeat();
    return std::make_shared<const std::string>(encode_op(op));
  }();
  return frame;
}

void Core::heard(Session& s, std::int64_t now) {
  // Answered at once, in this turn's flush, unless output is on its way anyway.
  if (liveness_.heard(s.alive, now) && !s.has_output())
    send_control(s, heartbeat_frame(), "heartbeat");
}

void Core::run_liveness(std::int64_t now) {
  liveness_.run(now, [&](LivenessTimers::Entry& e, LivenessTimers::Action action) {
    Session* s = find_session(e.id);
    if (!s) return;
    switch (action) {
      case LivenessTimers::Action::kExpire:
        tombstone(s->routing_id, v1::ERROR_SESSION_EXPIRED);
        drop_session(*s, CloseReason::kTimeout,
                     "silent for " + std::to_string(now - e.last_seen_ms) + " ms");
        return;
      case LivenessTimers::Action::kPing: {
        v1::Op op;
        op.mutable_ping()->set_nonce(++s->ping_nonce);
        send_control(*s, op);
        spdlog::debug("ping name={} session={} silent_ms={}", s->name, s->session_id,
                      now - e.last_seen_ms);
        return;
      }
      case LivenessTimers::Action::kHeartbeat:
        // Output waiting for the peer proves the broker alive when it leaves.
        if (!s->has_output()) send_control(*s, heartbeat_frame(), "heartbeat");
        return;
    }
  });
}

// Keys with a not_after: a min-heap of (expiry, session), so a session is cut
// when its key's validity ends, without scanning sessions.
void Core::run_key_expiry(std::int64_t) {
  if (expiry_.empty()) return;
  const std::int64_t at_us = now_us();
  while (!expiry_.empty() && expiry_.top().first <= at_us) {
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
