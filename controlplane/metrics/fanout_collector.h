// Prometheus exposition of the message bus and the room kind: wsgate_bus_* from the
// bus's own counters and wsgate_room_members from the data plane's room registry, read when
// /metrics is scraped.
#pragma once

#include <string>
#include <vector>

#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {

// Thread-safe: Collect() reads relaxed atomics (BusStats) and the registry under its mutex.
class FanoutCollector final : public prometheus::Collectable {
 public:
  // `data_plane` (and `stats`, when given) must outlive the collector. With `stats`, the
  // per-route series of routes no longer configured are left out.
  explicit FanoutCollector(dataplane::DataPlane* data_plane,
                           const dataplane::StatsRegistry* stats = nullptr)
      : data_plane_(data_plane), stats_(stats) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  bool Live(const std::string& route) const { return stats_ == nullptr || stats_->IsLive(route); }

  dataplane::DataPlane* const data_plane_;
  const dataplane::StatsRegistry* const stats_;
};

}  // namespace wsgate::controlplane
