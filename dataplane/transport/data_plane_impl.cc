#include "dataplane/transport/data_plane_impl.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/bus/in_memory_bus.h"
#include "dataplane/bus/redis_bus.h"
#include "dataplane/bus/redis_url.h"
#include "dataplane/transport/fanout_kinds.h"
#include "dataplane/transport/outbound_kinds.h"

namespace wsgate::dataplane {

absl::StatusOr<std::unique_ptr<DataPlane>> DataPlane::Start(const DataPlaneOptions& options,
                                                            SnapshotPtr initial,
                                                            StatsRegistry* stats,
                                                            common::HealthState* health) {
  return transport::StartDataPlane(options, std::move(initial), stats, health,
                                   transport::WorkerOptions{});
}

namespace transport {

constexpr int kMaxWorkers = 1024;

absl::StatusOr<std::unique_ptr<DataPlane>> StartDataPlane(const DataPlaneOptions& options,
                                                          SnapshotPtr initial, StatsRegistry* stats,
                                                          common::HealthState* health,
                                                          const WorkerOptions& worker_options) {
  if (options.workers < 1 || options.workers > kMaxWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be between 1 and ", kMaxWorkers, ", got ", options.workers));
  }
  if (initial == nullptr) return absl::InvalidArgumentError("initial snapshot: must not be null");
  if (stats == nullptr || health == nullptr) {
    return absl::InvalidArgumentError("stats and health: must not be null");
  }
  if (stats->workers() < options.workers) {
    return absl::InvalidArgumentError(absl::StrCat("stats: registry has ", stats->workers(),
                                                   " worker slots, need ", options.workers));
  }
  boost::system::error_code ec;
  boost::asio::ip::address address = boost::asio::ip::make_address(options.listen_address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen_address: '", options.listen_address, "' is not an IP address"));
  }

  auto dp = std::make_unique<DataPlaneImpl>();
  DataPlaneImpl* raw = dp.get();
  uint16_t port = options.port;
  // One registry of external_client connections for all workers (per-client caps, REST).
  WorkerOptions shared_options = worker_options;
  if (!shared_options.admission) shared_options.admission = std::make_shared<limits::Admission>();
  if (!shared_options.external_clients) {
    shared_options.external_clients = std::make_shared<ExternalClientRegistry>();
  }
  for (int i = 0; i < options.workers; ++i) {
    auto worker = std::make_unique<Worker>(i, initial, health, shared_options,
                                           [raw] { raw->OnWorkerDrained(); });
    // The first worker may bind port 0; the others join the port it got (SO_REUSEPORT).
    absl::Status status = worker->Listen(boost::asio::ip::tcp::endpoint(address, port));
    if (!status.ok()) return status;  // workers not started yet: destruction is plain
    port = worker->local_port();
    dp->workers_.push_back(std::move(worker));
  }
  dp->port_ = port;
  // The bus needs every worker's executor, so it is created after them and attached before their
  // threads start.
  std::vector<boost::asio::any_io_executor> executors;
  for (auto& worker : dp->workers_) executors.push_back(worker->io_context().get_executor());
  if (options.redis_url.empty()) {
    dp->bus_ = bus::MakeInMemoryBus(std::move(executors));
  } else {
    absl::StatusOr<bus::RedisEndpoint> endpoint = bus::ParseRedisUrl(options.redis_url);
    if (!endpoint.ok()) return endpoint.status();  // "REDIS_URL: ..." names the setting
    bus::RedisBusOptions bus_options;
    bus_options.endpoint = *std::move(endpoint);
    dp->bus_ = bus::MakeRedisBus(std::move(bus_options), std::move(executors));
  }
  dp->rooms_ = std::make_shared<RoomRegistry>();
  dp->events_ = std::make_shared<FanoutEvents>();
  for (auto& worker : dp->workers_) worker->AttachBus(dp->bus_.get(), dp->rooms_, dp->events_);
  for (auto& worker : dp->workers_) worker->StartThread();
  spdlog::info("data plane listening on {}:{} with {} worker(s)", options.listen_address, port,
               options.workers);
  return std::unique_ptr<DataPlane>(std::move(dp));
}

DataPlaneImpl::~DataPlaneImpl() { Stop(std::chrono::steady_clock::now()); }

void DataPlaneImpl::ApplySnapshot(SnapshotPtr snapshot) {
  if (snapshot == nullptr) return;
  for (auto& worker : workers_) worker->PostSnapshot(snapshot);
}

uint64_t DataPlaneImpl::applied_version() const {
  uint64_t min = UINT64_MAX;
  for (const auto& worker : workers_) min = std::min(min, worker->applied_version());
  return workers_.empty() ? 0 : min;
}

DataPlane::FanoutCounts DataPlaneImpl::Fanout() const {
  FanoutCounts out;
  if (rooms_) out.room_members = rooms_->MembersByRoute();
  if (events_) {
    out.backpressure_closes = events_->BackpressureCloses();
    out.auth_failures = events_->AuthFailures();
  }
  return out;
}

void DataPlaneImpl::StopAccepting() {
  for (auto& worker : workers_) worker->PostStopAccepting();
}

void DataPlaneImpl::CloseAll(uint16_t code, const std::string& reason) {
  for (auto& worker : workers_) worker->PostCloseAll(code, reason);
}

void DataPlaneImpl::OnWorkerDrained() {
  // Taking the mutex orders the worker's count update before the waiter's predicate check.
  { std::lock_guard<std::mutex> lock(drained_mu_); }
  drained_cv_.notify_all();
}

bool DataPlaneImpl::AllDrained() const {
  for (const auto& worker : workers_) {
    if (worker->live_connections() != 0) return false;
  }
  return true;
}

void DataPlaneImpl::Stop(std::chrono::steady_clock::time_point deadline) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  for (const auto& worker : workers_) {
    if (worker->is_current_thread()) {
      // A worker cannot join itself; this is a programming error, not bad input.
      spdlog::critical("DataPlane::Stop called from worker thread");
      std::abort();
    }
  }
  StopAccepting();
  {
    std::unique_lock<std::mutex> lock(drained_mu_);
    drained_cv_.wait_until(lock, deadline, [this] { return AllDrained(); });
  }
  for (auto& worker : workers_) worker->StopAndJoin();
  if (bus_) bus_->Stop();  // after the workers: no subscriber callback can run any more
  stopped_ = true;
}

}  // namespace transport
}  // namespace wsgate::dataplane
