// A token bucket: `rate` tokens per second, at most `burst` stored. Not thread-safe: one per
// connection (owned by its worker), or guarded by the owner's mutex (Admission's handshake rate).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace wsgate::dataplane::limits {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // The burst used when a rate is set without one: one second's worth, at least 1.
  static double DefaultBurst(double rate) { return std::max(1.0, std::ceil(rate)); }

  // rate <= 0: unlimited (TryTake always succeeds). burst 0: DefaultBurst(rate). A bucket
  // reconfigured keeps the tokens it has (capped by the new burst), so lowering a limit takes
  // effect at once and raising it does not hand out a free burst; one that was unlimited
  // starts full.
  void Configure(double rate, uint32_t burst, Clock::time_point now) {
    const double new_burst = rate > 0 ? (burst > 0 ? burst : DefaultBurst(rate)) : 0;
    if (!configured_ || rate_ <= 0) {
      // New, or unlimited until now: a full burst.
      tokens_ = new_burst;
      last_ = now;
      configured_ = true;
    } else {
      Refill(now);
      tokens_ = std::min(tokens_, new_burst);
    }
    rate_ = rate;
    burst_ = new_burst;
  }

  bool unlimited() const { return rate_ <= 0; }
  double rate() const { return rate_; }
  double burst() const { return burst_; }

  // Takes one token if there is one.
  bool TryTake(Clock::time_point now) {
    if (rate_ <= 0) return true;
    Refill(now);
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return true;
    }
    return false;
  }

  // Seconds until one token is available (0 when one is).
  double SecondsUntilToken(Clock::time_point now) {
    if (rate_ <= 0) return 0;
    Refill(now);
    return tokens_ >= 1.0 ? 0 : (1.0 - tokens_) / rate_;
  }

 private:
  void Refill(Clock::time_point now) {
    if (now > last_) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
      last_ = now;
    }
  }

  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point last_{};
  bool configured_ = false;
};

}  // namespace wsgate::dataplane::limits
