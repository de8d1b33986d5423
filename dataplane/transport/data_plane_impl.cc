#include "dataplane/transport/data_plane_impl.h"

#include "common/text/utf8.h"
#include "dataplane/transport/run_on_workers.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/bus/in_memory_bus.h"
#include "dataplane/bus/redis_bus.h"
#include "dataplane/bus/redis_url.h"
#include "dataplane/kinds/fanout/fanout_kinds.h"
#include "dataplane/kinds/outbound/outbound_kinds.h"

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
  if (absl::Status s = CheckListenAddress(options.listen_address); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("listen_address: ", s.message()));
  }
  const boost::asio::ip::address address = boost::asio::ip::make_address(options.listen_address);

  auto dp = std::make_unique<DataPlaneImpl>();
  DataPlaneImpl* raw = dp.get();
  uint16_t port = options.port;
  // One registry of external_client connections for all workers (per-client caps, REST).
  WorkerOptions shared_options = worker_options;
  if (!shared_options.admission) shared_options.admission = std::make_shared<limits::Admission>();
  if (!shared_options.connection_cap) {
    shared_options.connection_cap = std::make_shared<limits::ConnectionCap>(options.max_connections);
  }
  if (shared_options.refusals == nullptr) shared_options.refusals = &stats->refusals();
  shared_options.pubsub_ping_interval = options.pubsub_ping_interval;
  shared_options.pubsub_ping_timeout = options.pubsub_ping_timeout;
  shared_options.debug_events = options.debug_events;
  if (!shared_options.external_clients) {
    shared_options.external_clients = std::make_shared<ExternalClientRegistry>();
  }
  if (!shared_options.session_ids) {
    shared_options.session_ids = std::make_shared<sessions::SessionIdRegistry>();
  }
  if (!shared_options.session_events) {
    shared_options.session_events = std::make_shared<sessions::SessionEventHub>();
  }
  dp->session_ids_ = shared_options.session_ids;
  dp->session_events_ = shared_options.session_events;
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

void DataPlaneImpl::CloseSome(size_t n, uint16_t code, const std::string& reason) {
  if (workers_.empty() || n == 0) return;
  // Split evenly: connections are spread over the workers by the kernel's SO_REUSEPORT hash.
  const size_t share = (n + workers_.size() - 1) / workers_.size();
  for (auto& worker : workers_) worker->PostCloseSome(share, code, reason);
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

// ---------------------------------------------------------------------------------------------
// Session registry: run on every worker (run_on_workers.h), merge on the calling thread.

namespace {

absl::Status GatherTimeout() {
  return absl::UnavailableError("the data plane did not answer (shutting down?)");
}

absl::Status OpStatus(const std::vector<Worker::SessionOpResult>& results, const std::string& id) {
  for (Worker::SessionOpResult r : results) {
    if (r == Worker::SessionOpResult::kDone) return absl::OkStatus();
    if (r == Worker::SessionOpResult::kNotOpen) {
      return absl::FailedPreconditionError(absl::StrCat("session '", id, "' is not open"));
    }
  }
  return absl::NotFoundError(absl::StrCat("id: no session '", id, "'"));
}

}  // namespace

absl::StatusOr<sessions::SessionPage> DataPlaneImpl::ListSessions(
    const sessions::SessionQuery& query) {
  std::optional<std::vector<sessions::SessionPage>> pages =
      RunOnEveryWorker(workers_, [query](Worker& w) { return w.QuerySessions(query); });
  if (!pages) return GatherTimeout();
  // Every worker sent its first `limit` after the cursor: the first `limit` of their union are
  // the page.
  sessions::SessionPage out;
  for (sessions::SessionPage& p : *pages) {
    out.total += p.total;
    out.more = out.more || p.more;
    for (sessions::SessionInfo& info : p.sessions) out.sessions.push_back(std::move(info));
  }
  std::sort(out.sessions.begin(), out.sessions.end(),
            [](const sessions::SessionInfo& a, const sessions::SessionInfo& b) {
              return sessions::Earlier(a.connected_at, a.id, b.connected_at, b.id);
            });
  if (out.sessions.size() > query.limit) {
    out.sessions.resize(query.limit);
    out.more = true;
  }
  return out;
}

absl::StatusOr<std::map<std::string, sessions::RouteSessionCounts>>
DataPlaneImpl::CountSessions() {
  using Counts = std::map<std::string, sessions::RouteSessionCounts>;
  auto all = RunOnEveryWorker(workers_, [](Worker& w) { return w.CountSessions(); });
  if (!all) return GatherTimeout();
  Counts out;
  for (const Counts& c : *all) {
    for (const auto& [route, n] : c) {
      sessions::RouteSessionCounts& o = out[route];
      o.connecting += n.connecting;
      o.open += n.open;
      o.closing += n.closing;
      o.upstream_open += n.upstream_open;
    }
  }
  return out;
}

absl::StatusOr<sessions::SessionInfo> DataPlaneImpl::GetSession(const std::string& id) {
  auto found = RunOnEveryWorker(workers_, [id](Worker& w) { return w.FindSessionInfo(id); });
  if (!found) return GatherTimeout();
  for (auto& s : *found) {
    if (s) return *std::move(s);
  }
  return absl::NotFoundError(absl::StrCat("id: no session '", id, "'"));
}

absl::Status DataPlaneImpl::CloseSession(const std::string& id, uint32_t code,
                                         const std::string& reason) {
  if (code == 0) code = 1000;
  if (code != 1000 && (code < 3000 || code > 4999)) {
    return absl::InvalidArgumentError(
        absl::StrCat("code: must be 1000 or between 3000 and 4999, got ", code));
  }
  if (reason.size() > 123) {
    return absl::InvalidArgumentError(
        absl::StrCat("reason: at most 123 bytes, got ", reason.size()));
  }
  if (!text::IsValidUtf8(reason)) {
    return absl::InvalidArgumentError("reason: must be valid UTF-8");
  }
  auto results = RunOnEveryWorker(workers_, [id, code, reason](Worker& w) {
    return w.CloseSession(id, static_cast<uint16_t>(code), reason);
  });
  if (!results) return GatherTimeout();
  return OpStatus(*results, id);
}

absl::Status DataPlaneImpl::SendToSession(const std::string& id, std::string payload,
                                          bool binary) {
  if (!binary && !text::IsValidUtf8(payload)) {
    return absl::InvalidArgumentError("text: must be valid UTF-8");
  }
  // Only one worker holds the id; the others answer kNotFound without touching the payload.
  auto shared = std::make_shared<const std::string>(std::move(payload));
  auto results = RunOnEveryWorker(workers_, [id, shared, binary](Worker& w) {
    return w.SendToSession(id, *shared, binary);
  });
  if (!results) return GatherTimeout();
  return OpStatus(*results, id);
}

}  // namespace transport
}  // namespace wsgate::dataplane
