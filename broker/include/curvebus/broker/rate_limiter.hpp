// A token bucket: `rate` tokens per second refill a bucket holding at most
// `burst` tokens; each admitted event takes one.  rate 0 means unlimited.
// Times are a monotonic clock in milliseconds supplied by the caller, so the
// limiter is a pure state machine (and easy to test).
#pragma once

#include <algorithm>
#include <cstdint>

namespace curvebus::broker {

class TokenBucket {
 public:
  TokenBucket() = default;
  // burst 0 means "one second's worth" (at least 1).
  TokenBucket(double rate_per_s, double burst)
      : rate_(rate_per_s), burst_(burst > 0 ? burst : std::max(1.0, rate_per_s)), tokens_(burst_) {}

  bool unlimited() const { return rate_ <= 0; }

  // Takes one token if available at `now_ms`.
  bool take(std::int64_t now_ms) {
    if (unlimited()) return true;
    refill(now_ms);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Variable costs known only after the work: `spend` may take the bucket
  // below zero (a debt repaid by the refill); `available` says whether any
  // token is left, i.e. whether the next piece of work may start.
  void spend(std::int64_t now_ms, double n) {
    if (unlimited()) return;
    refill(now_ms);
    tokens_ -= n;
    if (tokens_ < -burst_) tokens_ = -burst_;  // a debt of at most one burst
  }
  bool available(std::int64_t now_ms) {
    if (unlimited()) return true;
    refill(now_ms);
    return tokens_ > 0;
  }

  double tokens(std::int64_t now_ms) {
    refill(now_ms);
    return tokens_;
  }

 private:
  void refill(std::int64_t now_ms) {
    if (started_ && now_ms > last_ms_)
      tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ms - last_ms_) / 1000.0);
    if (!started_ || now_ms > last_ms_) last_ms_ = now_ms;
    started_ = true;
  }

  double rate_ = 0;
  double burst_ = 1;
  double tokens_ = 1;
  std::int64_t last_ms_ = 0;
  bool started_ = false;
};

}  // namespace curvebus::broker
