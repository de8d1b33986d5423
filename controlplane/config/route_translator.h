// One pass from a proto route to the data plane's runtime route: every check the validator makes
// and every value the snapshot needs happen in the same walk, so "validates" and "translates"
// cannot disagree. Errors are INVALID_ARGUMENT with the field path first
// ("route.websocket.upstreams[0]: scheme must be ws:// or wss:// (got http://)").
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "dataplane/routing/route_config.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// What to do with files a route names (a CA file, a JWT secret file or variable) that cannot be
// read or parsed now.
enum class UnreadableFiles {
  // Refuse the route, naming the field: admission of a new or changed configuration
  // (ValidateRoute, ValidateConfig).
  kRefuse,
  // Build the route anyway, failing closed (no TLS context: https targets are unreachable; no JWT
  // secret: every handshake gets 503) and log why: rebuilding routes that were admitted before,
  // whose files may have changed since (BuildSnapshot re-reads them on every apply).
  kFailClosed,
};

struct TranslatedRoute {
  // No counters yet (`stats` is null): BuildSnapshot resolves them.
  std::shared_ptr<dataplane::RouteConfig> config;
  // dataplane::PathTemplate::Shape() of the path ("/ws/{}"): two routes with the same shape
  // would be ambiguous, so the callers that see several routes refuse that.
  std::string path_shape;
};

// Validates `route` and builds its runtime form in one walk; the first error is returned, with
// `field` as the prefix of its path ("route", "routes[3]"). `defaults` are the gateway's
// default_limits (the route's limits are merged over them, EffectiveLimits). A route refused
// here is refused with the same message by ValidateRoute, and a route ValidateRoute accepts
// always translates.
absl::StatusOr<TranslatedRoute> TranslateRoute(const wsgate::v1::Route& route,
                                               std::string_view field,
                                               const wsgate::v1::Limits& defaults,
                                               UnreadableFiles files = UnreadableFiles::kRefuse);

// The limits a route's connections get, in proto form (LimitService.GetLimits `effective`): each
// field of the route's own limits that is set (non-zero), else the default's, else the built-in
// value (max_message_bytes 16 MiB, 1 MiB on external_client; burst = ceil(rate) when a rate is
// set; ping timeout = the interval; rate policy DROP; slow-consumer policy CLOSE). Fields left 0
// mean "no such limit".
wsgate::v1::Limits EffectiveLimits(const wsgate::v1::Route& route,
                                   const wsgate::v1::Limits& defaults);

}  // namespace wsgate::controlplane
