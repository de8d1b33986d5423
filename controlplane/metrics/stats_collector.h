// Prometheus exposition of the data plane's per-worker counters.
//
// The hot path only bumps plain per-worker integers (dataplane/stats/route_stats.h); this
// Collectable folds them into prometheus MetricFamily structs when /metrics is scraped, so there
// is no prometheus Counter or Histogram object (and no CAS loop or mutex) per message.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dataplane/stats/route_stats.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {

// Thread-safe: Collect() only reads the registry (under its own mutex) and relaxed atomics, so it
// may run on any thread, concurrently with the workers.
class StatsCollector final : public prometheus::Collectable {
 public:
  // `stats` must outlive the collector. `config_version` is called at every scrape (the version
  // the data plane has applied); it must be thread-safe.
  StatsCollector(const dataplane::StatsRegistry* stats, std::function<uint64_t()> config_version,
                 std::string build_version);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const dataplane::StatsRegistry* const stats_;
  const std::function<uint64_t()> config_version_;
  const std::string build_version_;
};

// Text exposition format 0.0.4 of everything the collectables return, in order.
std::string SerializeMetrics(const std::vector<const prometheus::Collectable*>& collectables);

// The Content-Type of SerializeMetrics' output.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace wsgate::controlplane
