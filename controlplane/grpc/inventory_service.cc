#include "controlplane/grpc/inventory_service.h"

#include <set>

namespace wsgate::controlplane {

grpc::Status InventoryServiceImpl::GetInventory(grpc::ServerContext*,
                                                const wsgate::v1::GetInventoryRequest*,
                                                wsgate::v1::Inventory* response) {
  response->set_config_version(data_plane_ != nullptr ? data_plane_->applied_version()
                                                      : store_->version());
  response->set_workers(
      static_cast<uint32_t>(data_plane_ != nullptr ? data_plane_->workers() : stats_->workers()));
  response->set_build_version(build_version_);

  std::set<std::string> configured;
  for (const wsgate::v1::Route& r : store_->ListRoutes()) configured.insert(r.name());

  // The registry keeps the counters of every route ever configured (connections may outlive
  // their route). Report the configured routes, plus deleted ones that still hold connections.
  uint64_t active_total = 0;
  stats_->ForEach([&](const dataplane::RouteStats& rs) {
    const dataplane::RouteTotals t = rs.Fold();
    // The gauge is signed; a negative sum would be a counting bug, but it must not be reported
    // as a huge unsigned number.
    const uint64_t active =
        t.connections_active > 0 ? static_cast<uint64_t>(t.connections_active) : 0;
    if (active == 0 && configured.count(rs.route()) == 0) return;
    active_total += active;
    wsgate::v1::RouteInventory* ri = response->add_routes();
    ri->set_route(rs.route());
    ri->set_active_connections(active);
    ri->set_total_connections(
        t.connections[static_cast<int>(dataplane::ConnectionOutcome::kAccepted)]);
  });
  response->set_active_connections(active_total);
  return grpc::Status::OK;
}

}  // namespace wsgate::controlplane
