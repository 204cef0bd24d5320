#include "curvebus/broker/liveness.hpp"

#include <algorithm>

namespace curvebus::broker {

LivenessDecision liveness_step(const LivenessInput& in) {
  LivenessDecision d;
  const std::int64_t interval = std::max<std::int64_t>(1, in.interval_ms);
  const std::int64_t silence = in.now_ms - in.last_seen_ms;
  if (silence >= interval * kTimeoutIntervals) {
    d.state = LivenessState::kExpired;
    d.next_check_ms = in.now_ms;
    return d;
  }
  bool pinged = in.pinged;
  std::int64_t last_sent = in.last_sent_ms;
  if (!pinged && silence >= interval * kPingIntervals) {
    d.send_ping = true;
    pinged = true;
    last_sent = in.now_ms;
  }
  if (!d.send_ping && !in.output_pending && in.now_ms - last_sent >= interval) {
    d.send_heartbeat = true;
    last_sent = in.now_ms;
  }
  d.state = pinged ? LivenessState::kPinged : LivenessState::kAlive;
  const std::int64_t silence_due =
      in.last_seen_ms + interval * (pinged ? kTimeoutIntervals : kPingIntervals);
  // With output pending the flush updates last_sent; re-check one interval on.
  const std::int64_t heartbeat_due =
      in.output_pending ? in.now_ms + interval : last_sent + interval;
  d.next_check_ms = std::max(in.now_ms + 1, std::min(silence_due, heartbeat_due));
  return d;
}

}  // namespace curvebus::broker
