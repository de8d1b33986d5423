// Liveness and readiness, shared by the data-plane HTTP endpoints and the admin server.
// Thread-safe (atomics).
#pragma once

#include <atomic>

namespace wsgate::common {

class HealthState {
 public:
  // /ready answers 200 only while ready; it turns false at the start of shutdown.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  void set_ready(bool r) { ready_.store(r, std::memory_order_release); }

 private:
  std::atomic<bool> ready_{false};
};

}  // namespace wsgate::common
