// The data plane's immutable runtime snapshot, built from proto routes by translating each one
// (route_translator.h: the same walk that validates them).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/config/route_translator.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// Translates every route (TranslateRoute with UnreadableFiles::kFailClosed: files re-read on
// every apply, a vanished one fails the route closed) over `defaults`, the gateway's
// default_limits. The first route that does not translate is the error, named "routes[i]..."
// (`routes` that passed ValidateRoute always translate). No side effects on any registry.
absl::StatusOr<std::vector<std::shared_ptr<dataplane::RouteConfig>>> TranslateRoutes(
    const std::vector<wsgate::v1::Route>& routes, const wsgate::v1::Limits& defaults);

// Resolves each route's counters in `stats` once (so the hot path never looks a metric up by
// label), drops the series of routes that are gone, and wraps the routes in a Snapshot. Cannot
// fail. `stats` may be null (no counters).
dataplane::SnapshotPtr MakeSnapshot(std::vector<std::shared_ptr<dataplane::RouteConfig>> routes,
                                    uint64_t version, dataplane::StatsRegistry* stats);

// TranslateRoutes, then MakeSnapshot.
absl::StatusOr<dataplane::SnapshotPtr> BuildSnapshot(
    const std::vector<wsgate::v1::Route>& routes, uint64_t version, dataplane::StatsRegistry* stats,
    const wsgate::v1::Limits& defaults = wsgate::v1::Limits::default_instance());

}  // namespace wsgate::controlplane
