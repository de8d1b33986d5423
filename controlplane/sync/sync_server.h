// The control plane's end of the split deployment: wsgate.v1.DataPlaneService, which every data
// plane (--role=dataplane) dials. It pushes the committed config as whole ConfigSnapshots, records
// each data plane's ACKs, NACKs and samples for the inventory, and counts them for /metrics.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "controlplane/auth/token_auth.h"
#include "wsgate/v1/dataplane_service.grpc.pb.h"
#include "wsgate/v1/inventory_service.pb.h"

namespace wsgate::controlplane {

// Where committed configs come from, as the control plane sees it: the store's listener calls
// Publish (serialized, in version order). The one-process mode does not use it: there the
// listener applies the snapshot to the local data plane directly.
class SnapshotPublisher {
 public:
  virtual ~SnapshotPublisher() = default;
  virtual void Publish(wsgate::v1::ConfigSnapshot snapshot) = 0;
};

// The whole committed config at `version`, as the control plane pushes it (`server` left empty:
// each process has its own).
wsgate::v1::ConfigSnapshot MakeConfigSnapshot(const std::vector<wsgate::v1::Route>& routes,
                                              const wsgate::v1::Limits& defaults,
                                              uint64_t version);

// Thread-safe. Each Sync stream runs on a gRPC handler thread (reading) plus a writer thread of
// its own, so that Publish never waits for a slow data plane: it only replaces the stream's
// "next snapshot to send" and wakes the writer, which always sends the newest one (versions a
// slow data plane had not been sent yet are skipped: each snapshot is whole).
class SyncServer final : public wsgate::v1::DataPlaneService::Service, public SnapshotPublisher {
 public:
  SyncServer();
  // Null (the default): open; else each stream needs an admin bearer token (UNAUTHENTICATED
  // without a valid one, PERMISSION_DENIED for a viewer). Call before the gRPC server starts;
  // `tokens` must outlive the server.
  void RequireTokens(const TokenTable* tokens) { tokens_ = tokens; }
  ~SyncServer() override;

  void Publish(wsgate::v1::ConfigSnapshot snapshot) override;

  grpc::Status Sync(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<wsgate::v1::SyncResponse, wsgate::v1::SyncRequest>* stream)
      override;

  // Appends every known data plane (connected, or gone for less than 10 minutes).
  void FillInventory(wsgate::v1::Inventory* inventory);
  // wsgate_dataplanes, wsgate_config_push_seconds, wsgate_dataplane_nacks_total.
  const prometheus::Collectable* metrics() const { return registry_.get(); }

  // Ends every stream's writer (the gRPC server's shutdown ends the streams themselves).
  void Shutdown();

 private:
  using Clock = std::chrono::steady_clock;
  struct Stream;
  struct Record {
    wsgate::v1::DataPlaneInventory info;
    uint64_t generation = 0;  // which stream owns the record (a reconnect replaces the old one)
    Clock::time_point gone_since;
  };
  void UpdateStateGauges();  // holds mu_
  void Prune();              // holds mu_
  void Serve(Stream* stream, uint64_t generation, const std::string& id,
             grpc::ServerReaderWriter<wsgate::v1::SyncResponse, wsgate::v1::SyncRequest>* rw);

  const TokenTable* tokens_ = nullptr;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>* dataplanes_ = nullptr;
  prometheus::Gauge* connected_ = nullptr;
  prometheus::Gauge* disconnected_ = nullptr;
  prometheus::Histogram* push_seconds_ = nullptr;
  prometheus::Counter* nacks_ = nullptr;

  std::mutex mu_;
  std::shared_ptr<const wsgate::v1::SyncResponse> current_;  // the newest snapshot, null before
  std::map<uint64_t, Clock::time_point> committed_;           // version -> Publish time (last 256)
  std::map<std::string, Record> records_;                     // by data plane id
  std::map<uint64_t, Stream*> streams_;                       // by generation
  uint64_t next_generation_ = 1;
  bool shut_down_ = false;
};

}  // namespace wsgate::controlplane
