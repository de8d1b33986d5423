#include "controlplane/config/config_validator.h"

#include <cmath>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "controlplane/config/route_translator.h"
#include "dataplane/data_plane.h"

namespace wsgate::controlplane {
namespace {

using wsgate::v1::Route;

constexpr uint64_t kMaxMessageBytes = 256ull << 20;
constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxWorkers = 64;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

constexpr uint64_t kMaxSendQueueBytes = 1ull << 30;
constexpr double kMaxRate = 1e6;
constexpr uint32_t kMinPingIntervalMs = 100;

absl::Status ValidateRate(double v, const std::string& field) {
  if (!std::isfinite(v) || v < 0) {
    return Invalid(field, absl::StrCat("must be >= 0 (0: unlimited), got ", v));
  }
  if (v > kMaxRate) return Invalid(field, absl::StrCat("must be at most ", kMaxRate, ", got ", v));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLimits(const wsgate::v1::Limits& limits, std::string_view field_in) {
  const std::string field(field_in);
  using L = wsgate::v1::Limits;
  if (limits.max_message_bytes() > kMaxMessageBytes) {
    return Invalid(field + ".max_message_bytes",
                   absl::StrCat("must be 0 (default 16777216) or 1..", kMaxMessageBytes, ", got ",
                                limits.max_message_bytes()));
  }
  if (auto s = ValidateRate(limits.messages_per_second(), field + ".messages_per_second");
      !s.ok()) {
    return s;
  }
  if (limits.message_burst() != 0 && limits.messages_per_second() == 0) {
    return Invalid(field + ".message_burst",
                   "needs " + field + ".messages_per_second (a burst of an unlimited rate)");
  }
  if (!L::RatePolicy_IsValid(limits.rate_policy())) {
    return Invalid(field + ".rate_policy",
                   absl::StrCat("unknown value ", limits.rate_policy(),
                                " (RATE_POLICY_DROP or RATE_POLICY_CLOSE)"));
  }
  if (limits.rate_policy() != L::RATE_POLICY_UNSPECIFIED && limits.messages_per_second() == 0) {
    return Invalid(field + ".rate_policy", "needs " + field + ".messages_per_second");
  }
  if (auto s = ValidateRate(limits.handshakes_per_second(), field + ".handshakes_per_second");
      !s.ok()) {
    return s;
  }
  if (limits.send_queue_bytes() > kMaxSendQueueBytes) {
    return Invalid(field + ".send_queue_bytes",
                   absl::StrCat("must be 0 (built-in backpressure) or 1..", kMaxSendQueueBytes,
                                ", got ", limits.send_queue_bytes()));
  }
  if (!L::SlowConsumerPolicy_IsValid(limits.slow_consumer_policy())) {
    return Invalid(
        field + ".slow_consumer_policy",
        absl::StrCat("unknown value ", limits.slow_consumer_policy(),
                     " (SLOW_CONSUMER_POLICY_CLOSE or SLOW_CONSUMER_POLICY_DROP_OLDEST)"));
  }
  if (limits.slow_consumer_policy() != L::SLOW_CONSUMER_POLICY_UNSPECIFIED &&
      limits.send_queue_bytes() == 0) {
    return Invalid(field + ".slow_consumer_policy", "needs " + field + ".send_queue_bytes");
  }
  if (limits.ping_interval_ms() != 0 && limits.ping_interval_ms() < kMinPingIntervalMs) {
    return Invalid(field + ".ping_interval_ms",
                   absl::StrCat("must be 0 (no pings) or at least ", kMinPingIntervalMs, ", got ",
                                limits.ping_interval_ms()));
  }
  if (limits.ping_timeout_ms() != 0 && limits.ping_interval_ms() == 0) {
    return Invalid(field + ".ping_timeout_ms", "needs " + field + ".ping_interval_ms");
  }
  return absl::OkStatus();
}

absl::Status ValidateRoute(const Route& route, std::string_view field) {
  // The checks are the translation's: a route is valid exactly when it translates.
  return TranslateRoute(route, field, wsgate::v1::Limits::default_instance()).status();
}

absl::Status ValidateConfig(const wsgate::v1::Config& config) {
  const auto& server = config.server();
  const std::pair<const char*, uint32_t> ports[] = {{"port", server.port()},
                                                    {"admin_port", server.admin_port()},
                                                    {"grpc_port", server.grpc_port()}};
  for (const auto& [name, value] : ports) {
    if (value > kMaxPort) {
      return Invalid(absl::StrCat("server.", name),
                     absl::StrCat("must be at most ", kMaxPort, ", got ", value));
    }
  }
  // The same checks the data plane makes when it starts, so that a file --check-config accepts
  // also starts (and the error names the field, not the REDIS_URL that would override it).
  if (!server.listen_address().empty()) {
    if (auto s = dataplane::CheckListenAddress(server.listen_address()); !s.ok()) {
      return Invalid("server.listen_address", s.message());
    }
  }
  if (!server.redis_url().empty()) {
    if (auto s = dataplane::CheckRedisUrl(server.redis_url()); !s.ok()) {
      return Invalid("server.redis_url", s.message());
    }
  }
  if (server.workers() > kMaxWorkers) {
    return Invalid("server.workers", absl::StrCat("must be 0 (one per core) or 1..", kMaxWorkers,
                                                  ", got ", server.workers()));
  }
  if (auto s = ValidateLimits(config.default_limits(), "default_limits"); !s.ok()) return s;
  std::map<std::string, int> names;   // name -> index
  std::map<std::string, int> shapes;  // path shape -> index
  for (int i = 0; i < config.routes_size(); ++i) {
    const Route& r = config.routes(i);
    const std::string field = absl::StrCat("routes[", i, "]");
    auto translated = TranslateRoute(r, field, config.default_limits());
    if (!translated.ok()) return translated.status();
    if (auto [it, inserted] = names.emplace(r.name(), i); !inserted) {
      return Invalid(
          field + ".name",
          absl::StrCat("route name '", r.name(), "' is already used by routes[", it->second, "]"));
    }
    const std::string& shape = translated->path_shape;
    if (auto [it, inserted] = shapes.emplace(shape, i); !inserted) {
      const Route& other = config.routes(it->second);
      return Invalid(field + ".path", absl::StrCat("route '", r.name(), "' path '", r.path(),
                                                   "' overlaps route '", other.name(), "' path '",
                                                   other.path(), "' (same shape '", shape, "')"));
    }
  }
  return absl::OkStatus();
}

}  // namespace wsgate::controlplane
