// wsgate.v1.InventoryService: what the gateway runs and serves now, read from the config store,
// the data plane's applied version, the folded per-worker counters and the session registry.
#pragma once

#include "controlplane/auth/token_auth.h"

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "controlplane/config/config_store.h"
#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/inventory_service.grpc.pb.h"

namespace wsgate::controlplane {

// Message and byte rates per route from the per-worker counters, sampled (not computed per
// message): Sample() folds the counters of every route into a ring of the last kRingSize
// samples; Rates() answers from the ring. The data plane pays nothing for it. Thread-safe.
class RateSampler {
 public:
  static constexpr size_t kRingSize = 61;  // one minute of 1 Hz samples, plus the newest
  struct Totals {
    std::array<uint64_t, 4> v{};  // messages in, messages out, bytes in, bytes out
  };
  struct Rates {
    double window_seconds = 0;
    std::array<double, 4> per_second{};
  };

  explicit RateSampler(const dataplane::StatsRegistry* stats) : stats_(stats) {}
  // Takes one sample now (at `now`, injectable for tests).
  void Sample(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // Rates of `route` between the newest sample and the oldest one at most `window` older.
  Rates RatesOf(const std::string& route, std::chrono::seconds window) const;

 private:
  struct Point {
    std::chrono::steady_clock::time_point at;
    std::map<std::string, Totals> routes;
  };
  const dataplane::StatsRegistry* const stats_;
  mutable std::mutex mu_;
  std::deque<Point> ring_;
};

// Thread-safe; called on gRPC's thread pool. Reads counters (relaxed atomics), the store and
// the rate ring; the per-state session counts are one gathering round over the workers.
class InventoryServiceImpl final : public wsgate::v1::InventoryService::Service {
 public:
  // (route, limit) -> hits since start; empty until a limit is hit.
  using LimitHitsFn = std::function<std::map<std::pair<std::string, std::string>, uint64_t>()>;

  // All pointers must outlive the service. `data_plane` may be null (no data plane in this
  // process): the config version is then the store's. Starts the 1 Hz sampler thread unless
  // `sample_thread` is false (tests call sampler().Sample() themselves).
  InventoryServiceImpl(const ConfigStore* store, dataplane::DataPlane* data_plane,
                       const dataplane::StatsRegistry* stats, std::string build_version,
                       LimitHitsFn limit_hits = nullptr, bool sample_thread = true);
  ~InventoryServiceImpl() override;

  grpc::Status GetInventory(grpc::ServerContext* context,
                            const wsgate::v1::GetInventoryRequest* request,
                            wsgate::v1::Inventory* response) override;

  RateSampler& sampler() { return sampler_; }

  // Requires a bearer token on every call (null: open). Call before the server starts;
  // `tokens` must outlive the service.
  void RequireTokens(const TokenTable* tokens) { tokens_ = tokens; }

  // On a control plane of a split deployment: adds its data planes to every answer (must be
  // thread-safe). Call before the server starts.
  using DataPlanesFn = std::function<void(wsgate::v1::Inventory*)>;
  void ReportDataPlanes(DataPlanesFn fn) { data_planes_ = std::move(fn); }

 private:
  const TokenTable* tokens_ = nullptr;
  DataPlanesFn data_planes_;
  const ConfigStore* const store_;
  dataplane::DataPlane* const data_plane_;
  const dataplane::StatsRegistry* const stats_;
  const std::string build_version_;
  const LimitHitsFn limit_hits_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  RateSampler sampler_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace wsgate::controlplane
