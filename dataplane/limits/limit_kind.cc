#include "dataplane/limits/limit_kind.h"

namespace wsgate::dataplane::limits {

namespace {
constexpr const char* kNames[kLimitKindCount] = {"max_message_bytes",
                                                 "messages_per_second",
                                                 "max_connections",
                                                 "max_connections_per_client",
                                                 "max_connections_per_address",
                                                 "handshakes_per_second",
                                                 "idle_timeout_ms",
                                                 "max_lifetime_ms",
                                                 "send_queue_bytes",
                                                 "ping_timeout_ms"};
}  // namespace

const char* LimitKindName(LimitKind k) {
  int i = static_cast<int>(k);
  return i >= 0 && i < kLimitKindCount ? kNames[i] : "unknown";
}

LimitKind LimitKindFromName(std::string_view name) {
  for (int i = 0; i < kLimitKindCount; ++i) {
    if (name == kNames[i]) return static_cast<LimitKind>(i);
  }
  return LimitKind::kCount;
}

}  // namespace wsgate::dataplane::limits
