// Semantic checks of configuration. Errors are INVALID_ARGUMENT with the field path first:
// "routes[1].websocket.upstreams[0]: scheme must be ws:// or wss:// (got http://)".
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// One level of limits (a route's, or the gateway's default_limits); `field` is the prefix
// ("route.limits", "default_limits", "limits"). Refuses negative or non-finite rates, a burst or
// rate policy without a rate, a slow-consumer policy without send_queue_bytes, a ping timeout
// without an interval, values out of range.
absl::Status ValidateLimits(const wsgate::v1::Limits& limits, std::string_view field);
// One route on its own. `field` is the prefix for error messages ("route", "routes[3]").
// Refuses route kinds and limits that are declared in the schema but not implemented yet.
// TranslateRoute (route_translator.h) with its result dropped: the checks are the translation's.
absl::Status ValidateRoute(const wsgate::v1::Route& route, std::string_view field);
// The whole config: every route (translated over default_limits), unique names, no two routes
// with the same path shape, server settings in range.
absl::Status ValidateConfig(const wsgate::v1::Config& config);

}  // namespace wsgate::controlplane
