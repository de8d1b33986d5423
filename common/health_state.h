// Liveness and readiness, shared by the data-plane HTTP endpoints and the admin server.
// Thread-safe (atomics).
#pragma once

#include <atomic>
#include <functional>

namespace wsgate::common {

class HealthState {
 public:
  // /ready answers 200 only while ready; it turns false at the start of shutdown.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  void set_ready(bool r) { ready_.store(r, std::memory_order_release); }

  // True while the message bus the routes need is unreachable: /ready answers 503 then (the
  // pod leaves the Service), /health stays 200 (a Redis outage must not restart every pod).
  // The probe is set once, before any server that reads it starts, and must be thread-safe.
  bool bus_down() const { return bus_down_probe_ && bus_down_probe_(); }
  void set_bus_down_probe(std::function<bool()> probe) { bus_down_probe_ = std::move(probe); }

 private:
  std::atomic<bool> ready_{false};
  std::function<bool()> bus_down_probe_;
};

}  // namespace wsgate::common
