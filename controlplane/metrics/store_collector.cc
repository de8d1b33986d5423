#include "controlplane/metrics/store_collector.h"

namespace wsgate::controlplane {

std::vector<prometheus::MetricFamily> StoreCollector::Collect() const {
  if (kind_.empty()) return {};
  prometheus::MetricFamily f;
  f.name = "wsgate_config_store_up";
  f.help = "Whether the config store shared by control-plane replicas answered the last "
           "exchange (1) or not (0: changes are refused, the last config is served).";
  f.type = prometheus::MetricType::Gauge;
  f.metric.emplace_back();
  f.metric.back().label = {{"store", kind_}};
  f.metric.back().gauge.value = up_() ? 1 : 0;
  return {std::move(f)};
}

}  // namespace wsgate::controlplane
