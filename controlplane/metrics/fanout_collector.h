// Prometheus exposition of the message bus and the room kind (issue 4): wsgate_bus_* from the
// bus's own counters and wsgate_room_members from the data plane's room registry, read when
// /metrics is scraped.
#pragma once

#include <vector>

#include "dataplane/data_plane.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {

// Thread-safe: Collect() reads relaxed atomics (BusStats) and the registry under its mutex.
class FanoutCollector final : public prometheus::Collectable {
 public:
  // `data_plane` must outlive the collector.
  explicit FanoutCollector(dataplane::DataPlane* data_plane) : data_plane_(data_plane) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  dataplane::DataPlane* const data_plane_;
};

}  // namespace wsgate::controlplane
