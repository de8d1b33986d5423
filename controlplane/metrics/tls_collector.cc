#include "controlplane/metrics/tls_collector.h"

#include <string>

namespace wsgate::controlplane {

std::vector<prometheus::MetricFamily> TlsCollector::Collect() const {
  prometheus::MetricFamily f;
  f.name = "wsgate_tls_certificate_expiry_timestamp_seconds";
  f.help = "When each loaded TLS certificate expires (its notAfter, Unix seconds), by which "
           "certificate (control: the gRPC and admin ports).";
  f.type = prometheus::MetricType::Gauge;
  for (const auto& [name, not_after] : board_->Snapshot()) {
    f.metric.emplace_back();
    f.metric.back().label = {{"certificate", name}};
    f.metric.back().gauge.value = static_cast<double>(not_after);
  }
  if (f.metric.empty()) return {};  // no TLS configured: no family at all
  return {std::move(f)};
}

}  // namespace wsgate::controlplane
