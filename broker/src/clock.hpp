// Clock: the time the broker core reads — a monotonic clock in milliseconds
// (timers, rate limits, liveness, idle topics) and the wall clock in
// microseconds (timestamps, key validity, uptime).
//
// The core reads its Clock once per loop turn and once per incoming message
// and keeps the values (Protocol::now_ms(), now_us()), so a clock read costs
// nothing per op.  The real clock reads the system (system_clock()); the
// in-process harness drives a manual one (testing/harness.hpp).
//
// Thread: called from the routing thread only.
#pragma once

#include <cstdint>

namespace curvebus::broker {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t steady_ms() = 0;  // never goes back
  virtual std::int64_t wall_us() = 0;    // microseconds since the Unix epoch
};

// The system's clocks (CLOCK_MONOTONIC, CLOCK_REALTIME).  Lives forever.
Clock& system_clock();

}  // namespace curvebus::broker
