// The websocketpp/Asio implementation of DataPlane: a set of Workers, one thread each.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/health_state.h"
#include "dataplane/bus/message_bus.h"
#include "dataplane/data_plane.h"
#include "dataplane/transport/worker.h"

namespace wsgate::dataplane::transport {

// DataPlane::Start with transport knobs that the public options do not expose (tests shorten
// the head timeout with it).
absl::StatusOr<std::unique_ptr<DataPlane>> StartDataPlane(const DataPlaneOptions& options,
                                                          SnapshotPtr initial, StatsRegistry* stats,
                                                          common::HealthState* health,
                                                          const WorkerOptions& worker_options);

// Thread-safe: every public method may be called from any thread except that Stop (and so the
// destructor, when Stop was not called) must not run on a worker thread.
class DataPlaneImpl : public DataPlane {
 public:
  DataPlaneImpl() = default;
  ~DataPlaneImpl() override;

  uint16_t port() const override { return port_; }
  int workers() const override { return static_cast<int>(workers_.size()); }
  void ApplySnapshot(SnapshotPtr snapshot) override;
  uint64_t applied_version() const override;
  bus::MessageBus* message_bus() override { return bus_.get(); }
  FanoutCounts Fanout() const override;
  absl::StatusOr<sessions::SessionPage> ListSessions(const sessions::SessionQuery& query) override;
  absl::StatusOr<sessions::SessionInfo> GetSession(const std::string& id) override;
  absl::Status CloseSession(const std::string& id, uint32_t code,
                            const std::string& reason) override;
  absl::Status SendToSession(const std::string& id, std::string payload, bool binary) override;
  absl::StatusOr<std::map<std::string, sessions::RouteSessionCounts>> CountSessions() override;
  sessions::SessionEventHub* session_events() override { return session_events_.get(); }
  void StopAccepting() override;
  void CloseAll(uint16_t code, const std::string& reason) override;
  void CloseSome(size_t n, uint16_t code, const std::string& reason) override;
  void Stop(std::chrono::steady_clock::time_point deadline) override;

 private:
  friend absl::StatusOr<std::unique_ptr<DataPlane>> StartDataPlane(const DataPlaneOptions&,
                                                                   SnapshotPtr, StatsRegistry*,
                                                                   common::HealthState*,
                                                                   const WorkerOptions&);

  void OnWorkerDrained();
  bool AllDrained() const;

  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Declared after workers_, so destroyed before them: the bus must go after the worker threads
  // stop (Stop joins them) and before their io_contexts.
  std::unique_ptr<bus::MessageBus> bus_;
  std::shared_ptr<RoomRegistry> rooms_;
  std::shared_ptr<FanoutEvents> events_;
  // Session registry: shared with every worker.
  std::shared_ptr<sessions::SessionIdRegistry> session_ids_;
  std::shared_ptr<sessions::SessionEventHub> session_events_;
  std::mutex drained_mu_;
  std::condition_variable drained_cv_;
  std::mutex stop_mu_;    // serialises Stop
  bool stopped_ = false;  // guarded by stop_mu_
};

}  // namespace wsgate::dataplane::transport
