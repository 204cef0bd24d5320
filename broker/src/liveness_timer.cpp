// The alive signal (liveness.hpp): what the broker does when LivenessTimers
// says a session is due, and key validity.
#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

const Bytes& heartbeat_frame() {
  static const Bytes frame = [] {
    v1::Op op;
    op.mutable_heartbeat();
    return std::make_shared<const std::string>(encode_op(op));
  }();
  return frame;
}

void Protocol::heard(Session& s) {
  // Answered at once, in this turn's flush, unless output is on its way anyway.
  if (sessions_.liveness().heard(s.alive, now_ms_) && !s.has_output())
    sessions_.control(s, *heartbeat_frame(), "heartbeat");
}

void Protocol::run_liveness(std::int64_t now) {
  sessions_.liveness().run(now, [&](LivenessTimers::Entry& e, LivenessTimers::Action action) {
    Session* s = sessions_.find(e.id);
    if (!s) return;
    switch (action) {
      case LivenessTimers::Action::kExpire:
        sessions_.tombstone(s->peer, v1::ERROR_SESSION_EXPIRED);
        close_session(*s, CloseReason::kTimeout,
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
        if (!s->has_output()) sessions_.control(*s, *heartbeat_frame(), "heartbeat");
        return;
    }
  });
}

// Keys with a not_after: the SessionTable keeps a heap of (expiry, session),
// so a session is cut when its key's validity ends, without scanning sessions.
void Protocol::run_key_expiry() {
  sessions_.expire_keys(now_us_, [&](Session& s) {
    audit("session_cut", s.name,
          {{"name", s.name}, {"fp", s.fingerprint}, {"reason", "key expired"}});
    spdlog::warn("session cut name={} fp={} session={}: key expired", s.name, s.fingerprint,
                 s.session_id);
    send_error(s, v1::ERROR_KEY_EXPIRED, 0, "this session's key reached its not_after", "",
               "session");
    sessions_.tombstone(s.peer, v1::ERROR_KEY_EXPIRED);
    close_session(s, CloseReason::kKeyExpired, "key expired");
  });
}

}  // namespace curvebus::broker
