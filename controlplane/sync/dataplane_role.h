// What `wsgate --role=dataplane` adds to a data plane: the token it presents, the snapshot it
// serves before any control plane answers (its cache), and the Sync stream that keeps it current.
// The gateway starts the DataPlane between Prepare and Start.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "controlplane/sync/snapshot_applier.h"
#include "controlplane/sync/sync_client.h"
#include "dataplane/data_plane.h"
#include <grpcpp/security/credentials.h>

#include "common/tls/server_certificate.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::controlplane {

struct DataPlaneRoleOptions {
  std::string control_plane;  // HOST:PORT
  std::string token_file;     // one bearer token; empty: none
  std::string id;             // empty: host name:data port
  std::string listen_address;
  std::string build_version;
  std::string state_dir;      // where snapshot.json is cached; empty: no cache
  // TLS to the control plane: the CA its certificate must chain to (the host in control_plane
  // must be a name the certificate carries); empty: plaintext.
  std::string control_plane_ca;
  // Presented as the client certificate when the control plane asks for one (mutual TLS): this
  // process's --control-tls-cert/--control-tls-key. Null: none.
  common::tls::ServerCertificatePtr client_certificate;
};

class DataPlaneRole {
 public:
  // Reads the token file (error naming --dataplane-token-file) and the cached snapshot (error
  // naming its path). `stats` must outlive the role.
  static absl::StatusOr<std::unique_ptr<DataPlaneRole>> Prepare(DataPlaneRoleOptions options,
                                                                dataplane::StatsRegistry* stats);
  ~DataPlaneRole();

  // What the data plane starts with: the cached snapshot, or an empty one at version 0.
  dataplane::SnapshotPtr initial_snapshot() const;
  bool has_snapshot() const { return cached_.has_value(); }
  uint64_t initial_version() const { return cached_ ? cached_->proto.version() : 0; }

  // Dials the control plane (on its own thread) and keeps dialling. `data_plane` must outlive
  // Stop; `on_applied` runs after each snapshot applied, on the stream's thread.
  void Start(dataplane::DataPlane* data_plane, std::function<void()> on_applied);
  // Ends the stream; the data plane goes on serving what it has.
  void Stop();

  // wsgate_dataplane_*; null before Start.
  const prometheus::Collectable* metrics() const {
    return client_ ? client_->metrics() : nullptr;
  }

 private:
  DataPlaneRole(DataPlaneRoleOptions options, dataplane::StatsRegistry* stats)
      : options_(std::move(options)), stats_(stats) {}

  const DataPlaneRoleOptions options_;
  dataplane::StatsRegistry* const stats_;
  std::string token_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;  // null: plaintext
  std::optional<CachedSnapshot> cached_;
  std::unique_ptr<SnapshotApplier> applier_;
  std::unique_ptr<SyncClient> client_;
};

}  // namespace wsgate::controlplane
