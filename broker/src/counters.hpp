// Counters: the broker's totals since it started, as ADMIN STATUS and
// $SYS/broker/stats report them (v1::Counters).  A plain value owned by the
// Core; the tables and the protocol count into it by reference.
//
// Thread: the routing thread only.
#pragma once

#include <cstdint>

namespace curvebus::broker {

struct Counters {
  std::uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t publications = 0, deliveries = 0, dropped = 0, denials = 0, errors_sent = 0;
  std::uint64_t malformed = 0, oversized = 0, rate_limited = 0, handshake_failures = 0;
  std::uint64_t auth_denied = 0, sessions_opened = 0, sessions_timed_out = 0, frames_out = 0;
  std::uint64_t not_admin = 0;
  std::uint64_t identity_mismatches = 0, routing_ids_refused = 0, budget_refused = 0;
  std::uint64_t quota_refused = 0, sessions_refused = 0, topics_freed = 0, input_deferred = 0;
};

}  // namespace curvebus::broker
