// wsgate.v1.InventoryService: what the gateway runs and serves now, read from the config store,
// the data plane's applied version and the folded per-worker counters.
#pragma once

#include <string>

#include "controlplane/config/config_store.h"
#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/inventory_service.grpc.pb.h"

namespace wsgate::controlplane {

// Thread-safe; called on gRPC's thread pool. Only reads counters (relaxed atomics) and the
// store; never posts to or waits for a worker.
class InventoryServiceImpl final : public wsgate::v1::InventoryService::Service {
 public:
  // All pointers must outlive the service. `data_plane` may be null (no data plane in this
  // process): the config version is then the store's.
  InventoryServiceImpl(const ConfigStore* store, const dataplane::DataPlane* data_plane,
                       const dataplane::StatsRegistry* stats, std::string build_version)
      : store_(store),
        data_plane_(data_plane),
        stats_(stats),
        build_version_(std::move(build_version)) {}

  grpc::Status GetInventory(grpc::ServerContext* context,
                            const wsgate::v1::GetInventoryRequest* request,
                            wsgate::v1::Inventory* response) override;

 private:
  const ConfigStore* const store_;
  const dataplane::DataPlane* const data_plane_;
  const dataplane::StatsRegistry* const stats_;
  const std::string build_version_;
};

}  // namespace wsgate::controlplane
