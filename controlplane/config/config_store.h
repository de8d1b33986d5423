// The source of truth for routes: in memory, in the state file (--state-dir) or in Redis
// (--store-url, shared by control-plane replicas; see store_backend.h, redis_store.h).
//
// Thread-safe: one mutex guards the routes and the version. Every accepted change bumps the config
// version, is written to the backend (when there is one) *before* it is acknowledged, and is then
// published to the listener as a new immutable snapshot. Listener calls are serialized and in
// version order. With a shared backend, a change another replica made is read back (announced by
// the backend, or found when this replica's own write finds the version moved) and published the
// same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

class StoreBackend;

class ConfigStore {
 public:
  using Listener = std::function<void(dataplane::SnapshotPtr)>;

  // With a non-empty `state_dir` holding a state file, the routes come from that file and
  // `initial` is ignored (a restart serves what was changed over gRPC); a state file that cannot
  // be read or parsed is an error, and the file is left untouched. Otherwise the routes come from
  // `initial`, which must already be valid (ValidateConfig). `stats` must outlive the store.
  static absl::StatusOr<std::unique_ptr<ConfigStore>> Open(const wsgate::v1::Config& initial,
                                                           const std::string& state_dir,
                                                           dataplane::StatsRegistry* stats);
  // The same with a backend of the caller's choice (MakeStateFileBackend, MakeRedisStoreBackend).
  // A shared backend (Redis) that holds no config yet is seeded with `initial` at version 1; one
  // that holds a config wins over `initial`, like a state file.
  static absl::StatusOr<std::unique_ptr<ConfigStore>> Open(const wsgate::v1::Config& initial,
                                                           std::unique_ptr<StoreBackend> backend,
                                                           dataplane::StatsRegistry* stats);
  ~ConfigStore();

  // The snapshot of the current version.
  dataplane::SnapshotPtr snapshot() const;
  uint64_t version() const;
  // Where the routes came from at Open: "state file <path>", "redis store <url>", or
  // "configuration".
  const std::string& origin() const { return origin_; }
  // The backend's metric label ("redis"; empty: none) and whether it answered last time.
  std::string store_kind() const;
  bool store_up() const;

  // Called after every change with the new snapshot. Set once, before serving. With a shared
  // backend this also starts watching it for other replicas' changes (so none is published
  // before the listener exists).
  void SetListener(Listener listener);
  // Stops watching a shared backend; after it returns the listener is called only for changes
  // made through this process. Call before the listener's target goes away.
  void StopWatching();

  std::vector<wsgate::v1::Route> ListRoutes() const;
  // NOT_FOUND when there is no such route.
  absl::StatusOr<wsgate::v1::Route> GetRoute(const std::string& name) const;

  struct PutResult {
    wsgate::v1::Route route;  // as stored, with its new version
    uint64_t config_version = 0;
    bool created = false;
  };
  // Create or replace by name. INVALID_ARGUMENT names the field ("route.path: ..."), including a
  // path whose shape another route already has; FAILED_PRECONDITION when expected_version is set
  // and differs from the route's version (0 = the route must not exist); UNAVAILABLE/INTERNAL
  // when the state file cannot be written (the change is then not applied); UNAVAILABLE naming
  // the store when Redis cannot be reached. With a shared store, a change that finds the stored
  // version moved (another replica wrote first) is re-run against the new state: the
  // expected_version and path checks then see the other replica's change; ABORTED if that
  // happens several times in a row.
  absl::StatusOr<PutResult> PutRoute(const wsgate::v1::Route& route,
                                     std::optional<uint64_t> expected_version);
  // Returns the new config version. NOT_FOUND, FAILED_PRECONDITION as above.
  absl::StatusOr<uint64_t> DeleteRoute(const std::string& name,
                                       std::optional<uint64_t> expected_version);

  // The gateway-wide default limits (under every route's own).
  wsgate::v1::Limits default_limits() const;

  struct LimitsChange {
    wsgate::v1::Limits before;  // configured at that level before the change
    wsgate::v1::Limits after;   // configured now
    uint64_t config_version = 0;
  };
  // Changes the limits configured for route `route` (empty: the defaults) to what `modify`
  // returns for the current ones; `modify` runs under the store's change lock, so concurrent
  // updates never lose one another. The result is validated (INVALID_ARGUMENT names the field:
  // "limits.messages_per_second: ..."), persisted and published like PutRoute. NOT_FOUND for an
  // unknown route. Nothing changed: no new version.
  absl::StatusOr<LimitsChange> UpdateLimits(
      const std::string& route,
      const std::function<absl::StatusOr<wsgate::v1::Limits>(const wsgate::v1::Limits&)>& modify);

 private:
  ConfigStore() = default;
  // Persists `routes` at `version` (if the stored version is still version - 1), then publishes
  // them and calls the listener. The caller holds listener_mu_. On a failed write nothing
  // changes; ABORTED when a shared store moved meanwhile.
  absl::Status Commit(std::vector<wsgate::v1::Route> routes, wsgate::v1::Limits defaults,
                      uint64_t version);
  // Runs `change` (under listener_mu_), again after a resync each time it is ABORTED.
  template <typename Change>
  auto WithRetries(const Change& change) -> decltype(change());
  // Brings this replica to the shared store's version (the caller holds listener_mu_): a newer
  // stored config is published; an older or missing one (a wiped Redis) is re-seeded from ours.
  absl::Status ResyncLocked();
  void Resync();
  // Swaps in a translated config and calls the listener (the caller holds listener_mu_).
  void Publish(std::vector<wsgate::v1::Route> routes, wsgate::v1::Limits defaults,
               uint64_t version, std::vector<std::shared_ptr<dataplane::RouteConfig>> translated);
  // A copy of what a change starts from, taken under mu_ (the caller holds listener_mu_, so it
  // stays current until the change commits).
  struct Current {
    std::vector<wsgate::v1::Route> routes;
    wsgate::v1::Limits defaults;
    uint64_t version = 0;
  };
  Current CopyCurrent() const;

  mutable std::mutex mu_;
  dataplane::StatsRegistry* stats_ = nullptr;
  std::unique_ptr<StoreBackend> backend_;  // null: changes are not persisted
  bool watching_ = false;                   // guarded by listener_mu_
  std::string origin_;
  uint64_t version_ = 0;
  std::vector<wsgate::v1::Route> routes_;  // ordered by name
  wsgate::v1::Limits default_limits_;
  dataplane::SnapshotPtr snapshot_;
  Listener listener_;
  // Held by every change from start to end (before mu_): serializes changes, and so listener
  // calls in version order, without holding mu_ across the state-file write.
  std::mutex listener_mu_;
};

}  // namespace wsgate::controlplane
