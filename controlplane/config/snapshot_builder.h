// Translation of validated proto routes into the data plane's immutable runtime snapshot.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/routing/snapshot.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// `routes` must have passed ValidateRoute (invalid input here is a programming error). Fills in
// defaults, parses upstream URLs, lowercases header names, and resolves each route's counters in
// `stats` once, so the hot path never looks a metric up by label.
// `defaults` are the gateway's default_limits: every route's limits are its own over them.
dataplane::SnapshotPtr BuildSnapshot(
    const std::vector<wsgate::v1::Route>& routes, uint64_t version, dataplane::StatsRegistry* stats,
    const wsgate::v1::Limits& defaults = wsgate::v1::Limits::default_instance());

// The limits a route's connections get, in proto form (LimitService.GetLimits `effective`): each
// field of the route's own limits that is set (non-zero), else the default's, else the built-in
// value (max_message_bytes 16 MiB, 1 MiB on external_client; burst = ceil(rate) when a rate is
// set; ping timeout = the interval; rate policy DROP; slow-consumer policy CLOSE). Fields left 0
// mean "no such limit".
wsgate::v1::Limits EffectiveLimits(const wsgate::v1::Route& route,
                                   const wsgate::v1::Limits& defaults);

}  // namespace wsgate::controlplane
