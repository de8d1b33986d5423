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
dataplane::SnapshotPtr BuildSnapshot(const std::vector<wsgate::v1::Route>& routes,
                                     uint64_t version, dataplane::StatsRegistry* stats);

}  // namespace wsgate::controlplane
