#include "dataplane/stats/handshake_refusals.h"

namespace wsgate::dataplane {

const char* RefusalReasonLabel(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kHeadTimeout: return "head_timeout";
    case RefusalReason::kHeadTooLarge: return "head_too_large";
    case RefusalReason::kMalformed: return "malformed";
    case RefusalReason::kNoRoute: return "no_route";
    case RefusalReason::kBadVersion: return "bad_version";
    case RefusalReason::kBadKey: return "bad_key";
    case RefusalReason::kOverCapacity: return "over_capacity";
    case RefusalReason::kShuttingDown: return "shutting_down";
    case RefusalReason::kDescriptorsExhausted: return "descriptors_exhausted";
    case RefusalReason::kCount: break;
  }
  return "unknown";
}

std::array<uint64_t, static_cast<int>(RefusalReason::kCount)> HandshakeRefusals::Fold() const {
  std::array<uint64_t, static_cast<int>(RefusalReason::kCount)> sum{};
  for (int w = 0; w < workers_; ++w) {
    for (int r = 0; r < static_cast<int>(RefusalReason::kCount); ++r) {
      sum[r] += slots_[w].by_reason[r].Get();
    }
  }
  return sum;
}

}  // namespace wsgate::dataplane
