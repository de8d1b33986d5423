// The process-wide cap on open client connections, shared by every worker: the defence against
// one client (or many) exhausting the descriptor limit, at which point nobody gets an answer and
// /metrics stops responding. Checked once per accepted connection, released when it ends.
// Thread-safe (one relaxed atomic).
#pragma once

#include <atomic>
#include <cstdint>

namespace wsgate::dataplane::limits {

class ConnectionCap {
 public:
  // `max` <= 0 means DefaultFromDescriptorLimit().
  explicit ConnectionCap(int64_t max);

  // False when `max()` connections are open already; nothing is taken then.
  bool TryAcquire() {
    if (open_.fetch_add(1, std::memory_order_relaxed) >= max_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void Release() { open_.fetch_sub(1, std::memory_order_relaxed); }

  int64_t max() const { return max_; }
  int64_t open() const { return open_.load(std::memory_order_relaxed); }

  // From the soft RLIMIT_NOFILE: a reserve for the admin and gRPC ports, Redis, state files and
  // the log (an eighth of the limit, between 32 and 1024 descriptors), and the rest halved,
  // because a proxied or outbound connection holds two descriptors (client and upstream leg).
  // 20,000 descriptors give 9,488 connections; 1,024 give 448.
  static int64_t DefaultFromDescriptorLimit();
  static int64_t DefaultFor(uint64_t descriptor_limit);

 private:
  const int64_t max_;
  std::atomic<int64_t> open_{0};
};

}  // namespace wsgate::dataplane::limits
