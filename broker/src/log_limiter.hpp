// Rate limit for noisy log lines: at most `burst` lines per `window_ms`; the
// next line after a quiet spell says how many were suppressed, so a flood of
// bad input cannot fill the disk but the operator still sees it.
#pragma once

#include <cstdint>

#include "curvebus/codec.hpp"

namespace curvebus::broker {

class LogLimiter {
 public:
  LogLimiter(std::uint32_t burst, std::int64_t window_ms) : burst_(burst), window_ms_(window_ms) {}
  // True when a line may be logged now; `suppressed` receives how many were
  // skipped since the last line that was logged.
  bool allow(std::uint64_t& suppressed) {
    const std::int64_t now = steady_ms();
    if (now - window_start_ >= window_ms_) {
      window_start_ = now;
      used_ = 0;
    }
    if (used_ >= burst_) {
      ++suppressed_;
      return false;
    }
    ++used_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::uint32_t burst_;
  std::int64_t window_ms_;
  std::int64_t window_start_ = -1000000000;
  std::uint32_t used_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace curvebus::broker
