// wsgate_config_store_up{store="redis"}: whether the shared config store answered the last
// exchange (1) or not (0). No family at all when the routes live in this process only.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace wsgate::controlplane {

// Thread-safe if `up` is. `kind` empty: collects nothing.
class StoreCollector final : public prometheus::Collectable {
 public:
  StoreCollector(std::string kind, std::function<bool()> up)
      : kind_(std::move(kind)), up_(std::move(up)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string kind_;
  const std::function<bool()> up_;
};

}  // namespace wsgate::controlplane
