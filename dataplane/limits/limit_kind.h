// The limits whose hits are counted (wsgate_limit_hits_total{route,limit}): the label is the
// Limits field name that caused the refusal, drop or close.
#pragma once

#include <string_view>

namespace wsgate::dataplane::limits {

enum class LimitKind {
  kMaxMessageBytes = 0,
  kMessagesPerSecond,
  kMaxConnections,
  kMaxConnectionsPerClient,
  kMaxConnectionsPerAddress,
  kHandshakesPerSecond,
  kIdleTimeout,
  kMaxLifetime,
  kSendQueueBytes,
  kPingTimeout,
  kCount
};
constexpr int kLimitKindCount = static_cast<int>(LimitKind::kCount);

// "max_message_bytes", "messages_per_second", ... (the proto field names).
const char* LimitKindName(LimitKind k);
// The inverse; kCount for a name that is not one of them.
LimitKind LimitKindFromName(std::string_view name);

}  // namespace wsgate::dataplane::limits
