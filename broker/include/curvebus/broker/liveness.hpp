// The broker's side of the alive signal (docs/protocol.md, "Liveness"), as a
// pure function of times so it can be tested without a clock.
//
//   ALIVE --(2 intervals of silence: send PING)--> PINGED
//   PINGED --(anything heard from the peer)--> ALIVE
//   ALIVE/PINGED --(3 intervals of silence)--> EXPIRED (session dropped)
//
// Independently, the broker sends HEARTBEAT to a peer it has sent nothing to
// for one interval (so the peer can tell a dead broker), unless output is
// already waiting for that peer.
#pragma once

#include <cstdint>

namespace curvebus::broker {

enum class LivenessState { kAlive, kPinged, kExpired };

struct LivenessInput {
  std::int64_t now_ms = 0;
  std::int64_t last_seen_ms = 0;  // last message heard from the peer
  std::int64_t last_sent_ms = 0;  // last message sent to the peer
  std::uint32_t interval_ms = 1000;
  bool pinged = false;          // a PING is outstanding (nothing heard since)
  bool output_pending = false;  // something is queued for the peer already
};

struct LivenessDecision {
  LivenessState state = LivenessState::kAlive;  // state after the step
  bool send_ping = false;
  bool send_heartbeat = false;
  std::int64_t next_check_ms = 0;  // when the step must run again
};

// timeout = 3 intervals, ping after 2 intervals of silence.
inline constexpr std::uint32_t kTimeoutIntervals = 3;
inline constexpr std::uint32_t kPingIntervals = 2;

LivenessDecision liveness_step(const LivenessInput& in);

}  // namespace curvebus::broker
