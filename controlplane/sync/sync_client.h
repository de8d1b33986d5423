// The data plane's end of the split deployment: one long-lived DataPlaneService.Sync stream to
// the control plane. It says hello (with the version it serves, so that an up-to-date data plane
// is sent nothing), applies each pushed snapshot through a ConfigTarget, ACKs or NACKs it, sends
// a sample every second, and reconnects with jittered exponential backoff when the stream ends.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <prometheus/collectable.h>

#include "controlplane/sync/snapshot_applier.h"
#include "wsgate/v1/dataplane_service.grpc.pb.h"

namespace grpc {
class ClientContext;
class ChannelCredentials;
}

namespace wsgate::controlplane {

struct SyncClientOptions {
  std::string control_plane;  // HOST:PORT of the control plane's gRPC port
  std::string token;          // bearer token sent on the stream; empty: none
  // How the stream is dialled; null: plaintext (a control plane without --control-tls-cert).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // id, address, build_version, workers, bus; serving_version is filled in at each connect.
  wsgate::v1::DataPlaneHello hello;
  // The inventory part of each sample (called on the sample thread; must be thread-safe).
  std::function<wsgate::v1::Inventory()> inventory;
  // When the snapshot served at start was last known current (a cached one: when it was
  // written); unset: no snapshot yet.
  std::optional<std::chrono::system_clock::time_point> snapshot_confirmed_at;
  // Called after each snapshot applied (on the stream's thread).
  std::function<void()> on_applied;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
};

// Start with Start(); Stop() (or the destructor) cancels the stream and joins its threads. Every
// other member is thread-safe.
class SyncClient {
 public:
  SyncClient(SyncClientOptions options, ConfigTarget* target);
  ~SyncClient();
  void Start();
  void Stop();

  bool connected() const { return connected_.load(); }
  // 0 while the stream is up (pushes arrive as they are committed); else seconds since it was
  // last up, or since the cached snapshot was written. Negative: no snapshot at all.
  double snapshot_age_seconds() const;
  // wsgate_dataplane_snapshot_age_seconds, wsgate_dataplane_control_plane_connected.
  const prometheus::Collectable* metrics() const { return collector_.get(); }

 private:
  void Run();
  // One stream from dial to end; true when the control plane accepted it (the backoff restarts).
  bool RunStream();
  // Waits `d` or until Stop; false when stopping.
  bool Sleep(std::chrono::milliseconds d);
  void Confirmed();

  const SyncClientOptions options_;
  ConfigTarget* const target_;
  std::unique_ptr<prometheus::Collectable> collector_;
  std::atomic<bool> connected_{false};
  std::atomic<int64_t> confirmed_at_ms_{-1};  // system clock, ms since the epoch; -1: never

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                    // guarded by mu_
  grpc::ClientContext* context_ = nullptr;   // guarded by mu_: the stream in flight
  std::thread thread_;
};

}  // namespace wsgate::controlplane
