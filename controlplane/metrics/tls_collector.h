// Prometheus exposition of the loaded TLS certificates:
// wsgate_tls_certificate_expiry_timestamp_seconds{certificate="control"} (later "listener"),
// the leaf's notAfter, for the alert that fires before a certificate runs out.
#pragma once

#include <vector>

#include "common/tls/server_certificate.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {

// Thread-safe (the board is). `board` must outlive the collector.
class TlsCollector final : public prometheus::Collectable {
 public:
  explicit TlsCollector(const common::tls::ExpiryBoard* board) : board_(board) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const common::tls::ExpiryBoard* const board_;
};

}  // namespace wsgate::controlplane
