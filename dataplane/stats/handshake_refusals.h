// Connections refused before any route kind took them, by reason: the `reason` label of
// wsgate_handshakes_refused_total. Each worker writes only its own slot (see route_stats.h), so
// counting a refusal costs a plain store; the scraper sums the slots.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "dataplane/stats/route_stats.h"

namespace wsgate::dataplane {

enum class RefusalReason {
  kHeadTimeout = 0,  // no complete request head within the head timeout (slowloris)
  kHeadTooLarge,     // 431
  kMalformed,        // 400: not an HTTP/1.x request head
  kNoRoute,          // 404: no route for the path (upgrades and plain requests alike)
  kBadVersion,       // 400/426: no Sec-WebSocket-Version, or not 13
  kBadKey,           // 400: Sec-WebSocket-Key missing or invalid
  kOverCapacity,     // 503: the process-wide max_connections
  kShuttingDown,     // 503: SIGTERM received
  kDescriptorsExhausted,  // 503 (or closed unanswered): accept hit EMFILE/ENFILE
  kCount
};

const char* RefusalReasonLabel(RefusalReason reason);

class HandshakeRefusals {
 public:
  explicit HandshakeRefusals(int workers)
      : workers_(workers), slots_(std::make_unique<Slot[]>(workers)) {}
  // Only worker `worker` may call this.
  void Count(int worker, RefusalReason reason) {
    slots_[worker].by_reason[static_cast<int>(reason)].Add();
  }
  // Summed over workers. Thread-safe.
  std::array<uint64_t, static_cast<int>(RefusalReason::kCount)> Fold() const;

 private:
  struct alignas(64) Slot {
    SingleWriterCounter by_reason[static_cast<int>(RefusalReason::kCount)];
  };
  const int workers_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace wsgate::dataplane
