// An immutable, versioned configuration snapshot: what the control plane hands to every worker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/routing/path_template.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::dataplane {

struct Snapshot {
  Snapshot(uint64_t version_in, std::vector<std::shared_ptr<const RouteConfig>> routes_in)
      : version(version_in), routes(routes_in), table(std::move(routes_in)) {}

  const uint64_t version;
  const std::vector<std::shared_ptr<const RouteConfig>> routes;
  const RouteTable table;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace wsgate::dataplane
