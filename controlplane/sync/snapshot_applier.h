// The data plane's end of a config push: turns a ConfigSnapshot from the control plane into the
// runtime snapshot every worker serves, or refuses it naming the field, and keeps the last good
// one on disk (<state-dir>/snapshot.json) so that a restart serves it before any control plane
// answers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/dataplane_service.pb.h"

namespace wsgate::controlplane {

// What a SyncClient steers. In a data plane that is SnapshotApplier; the one-process mode has no
// SyncClient (its ConfigStore listener applies snapshots in memory).
class ConfigTarget {
 public:
  virtual ~ConfigTarget() = default;
  // Applies `snapshot`, or refuses it with the error naming the field ("routes[2].pubsub...");
  // after a refusal the last good snapshot goes on serving.
  virtual absl::Status Apply(const wsgate::v1::ConfigSnapshot& snapshot) = 0;
  // The version served now (0: none yet).
  virtual uint64_t serving_version() const = 0;
};

// A cached snapshot read at start: the proto, its runtime form and when it was written.
struct CachedSnapshot {
  wsgate::v1::ConfigSnapshot proto;
  dataplane::SnapshotPtr runtime;
  std::chrono::system_clock::time_point written_at;
};

// <state_dir>/snapshot.json, the last snapshot a data plane applied.
std::string SnapshotCachePath(const std::string& state_dir);

// nullopt: no state dir or no cache yet. A cache that cannot be read or parsed is an error naming
// the path (the start stops, as for a corrupt routes.json). Its routes were admitted before, so
// files they name that are unreadable now fail those routes closed (as a rebuild does).
absl::StatusOr<std::optional<CachedSnapshot>> LoadCachedSnapshot(const std::string& state_dir,
                                                                 dataplane::StatsRegistry* stats);

// Thread-safe (Apply calls are serialized by a mutex; the SyncClient makes them one at a time).
class SnapshotApplier final : public ConfigTarget {
 public:
  // `data_plane` and `stats` must outlive the applier; `state_dir` empty: nothing is cached.
  // `last_good`: what the data plane serves now (a cached snapshot), if anything.
  SnapshotApplier(dataplane::DataPlane* data_plane, dataplane::StatsRegistry* stats,
                  std::string state_dir,
                  std::optional<wsgate::v1::ConfigSnapshot> last_good);

  // A route that is new or changed in `snapshot` is admitted here as PutRoute admits it on the
  // control plane (files and variables it names must be readable on this host, or the snapshot is
  // refused); a route unchanged since the last good snapshot is rebuilt as a restart rebuilds it
  // (an unreadable file fails that route closed). On success every worker gets the snapshot and
  // it is written to the cache (a failed write is logged; the snapshot still serves).
  absl::Status Apply(const wsgate::v1::ConfigSnapshot& snapshot) override;
  uint64_t serving_version() const override { return serving_version_.load(); }

 private:
  dataplane::DataPlane* const data_plane_;
  dataplane::StatsRegistry* const stats_;
  const std::string state_dir_;
  std::mutex mu_;
  std::optional<wsgate::v1::ConfigSnapshot> last_good_;  // guarded by mu_
  std::atomic<uint64_t> serving_version_{0};
};

}  // namespace wsgate::controlplane
