// Where the ConfigStore keeps its routes, default limits and config version: the state file
// (<state-dir>/routes.json, one process) or Redis (--store-url, replicas sharing one store).
// The ConfigStore validates every change and serializes its own calls; a backend only reads,
// writes with a compare-and-set on the version, and says when another writer moved it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  // For logs and errors: "state file <path>", "redis store redis://host:port/db".
  virtual std::string origin() const = 0;
  // The label of wsgate_config_store_up ("redis"); empty: the backend exports no such gauge.
  virtual std::string kind() const { return {}; }
  // Other processes write it too: the ConfigStore seeds an empty one at Open, and re-seeds one
  // that went behind (wiped) from its own, newer state.
  virtual bool shared() const { return false; }
  // Whether the last exchange with the store succeeded (always true for a local file).
  virtual bool up() const { return true; }

  // nullopt: nothing stored yet. Routes that do not validate are an error (never repaired).
  virtual absl::StatusOr<std::optional<wsgate::v1::StoredState>> Load() = 0;
  // Stores `state` (its config_version is the new version) only if the stored version is still
  // `base` (0: nothing stored). false: another writer moved it first and nothing was written.
  virtual absl::StatusOr<bool> Save(const wsgate::v1::StoredState& state, uint64_t base) = 0;

  // Starts calling `changed` (from a thread of the backend, never while the backend holds a
  // lock) whenever the stored version may have moved: a change announced by another replica,
  // a reconnect after an outage. No-op for a backend that only this process writes.
  virtual void Watch(std::function<void()> changed) { (void)changed; }
  // Stops calling `changed`; returns once no call is running. Idempotent.
  virtual void StopWatching() {}
};

// The state file: today's one-process persistence. Save ignores `base` (only this process
// writes the file).
std::unique_ptr<StoreBackend> MakeStateFileBackend(const std::string& state_dir);

}  // namespace wsgate::controlplane
