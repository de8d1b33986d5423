// Locking: every change takes listener_mu_ first and holds it to the end, so changes (and their
// listener calls) run one at a time, in version order. mu_ guards the published state and is
// held only briefly, never across the state-file write or the listener call, so readers
// (ListRoutes, snapshot()) are not held up by an fsync. Lock order: listener_mu_, then mu_.
// The listener must not call back into PutRoute/DeleteRoute (it would deadlock); reading is fine.
#include "controlplane/config/config_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/config/config_validator.h"
#include "controlplane/config/snapshot_builder.h"
#include "controlplane/config/store_backend.h"
#include "dataplane/routing/path_template.h"

namespace wsgate::controlplane {
namespace {

using wsgate::v1::Route;

std::vector<Route>::const_iterator FindByName(const std::vector<Route>& routes,
                                              const std::string& name) {
  return std::find_if(routes.begin(), routes.end(),
                      [&](const Route& r) { return r.name() == name; });
}

void SortByName(std::vector<Route>* routes) {
  std::sort(routes->begin(), routes->end(),
            [](const Route& a, const Route& b) { return a.name() < b.name(); });
}

absl::Status CheckExpectedVersion(const std::string& name, const Route* existing,
                                  std::optional<uint64_t> expected) {
  if (!expected.has_value()) return absl::OkStatus();
  if (existing == nullptr) {
    if (*expected == 0) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("route '", name, "' does not exist, expected version ", *expected));
  }
  if (existing->version() == *expected) return absl::OkStatus();
  if (*expected == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("route '", name, "' already exists at version ", existing->version(),
                     ", expected it not to exist"));
  }
  return absl::FailedPreconditionError(absl::StrCat("route '", name, "' is at version ",
                                                    existing->version(), ", expected ", *expected));
}

}  // namespace

// A change that keeps finding the shared store moved gives up after this many tries.
constexpr int kMaxAttempts = 5;

ConfigStore::~ConfigStore() { StopWatching(); }

absl::StatusOr<std::unique_ptr<ConfigStore>> ConfigStore::Open(const wsgate::v1::Config& initial,
                                                               const std::string& state_dir,
                                                               dataplane::StatsRegistry* stats) {
  return Open(initial, state_dir.empty() ? nullptr : MakeStateFileBackend(state_dir), stats);
}

absl::StatusOr<std::unique_ptr<ConfigStore>> ConfigStore::Open(
    const wsgate::v1::Config& initial, std::unique_ptr<StoreBackend> backend,
    dataplane::StatsRegistry* stats) {
  std::unique_ptr<ConfigStore> store(new ConfigStore());
  store->stats_ = stats;
  store->backend_ = std::move(backend);
  std::optional<wsgate::v1::StoredState> stored;
  // A shared store is seeded by the first replica; one that loses that race reads the winner's.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (store->backend_ != nullptr) {
      auto loaded = store->backend_->Load();
      if (!loaded.ok()) return loaded.status();
      stored = *std::move(loaded);
    }
    if (stored.has_value() || store->backend_ == nullptr || !store->backend_->shared()) break;
    if (auto s = ValidateConfig(initial); !s.ok()) return s;
    wsgate::v1::StoredState seed;
    seed.set_config_version(1);
    *seed.mutable_routes() = initial.routes();
    for (Route& r : *seed.mutable_routes()) r.set_version(1);
    *seed.mutable_default_limits() = initial.default_limits();
    auto saved = store->backend_->Save(seed, 0);
    if (!saved.ok()) return saved.status();
    if (*saved) {
      spdlog::info("{}: empty, seeded with the configuration's {} routes at version 1",
                   store->backend_->origin(), seed.routes_size());
      break;
    }
  }
  if (stored.has_value()) {
    store->origin_ = store->backend_->origin();
    store->routes_.assign(stored->routes().begin(), stored->routes().end());
    store->default_limits_ = stored->default_limits();
    // A file whose version went missing (hand-edited) must still never go backwards.
    uint64_t version = std::max<uint64_t>(stored->config_version(), 1);
    for (const Route& r : store->routes_) version = std::max(version, r.version());
    store->version_ = version;
  } else {
    if (auto s = ValidateConfig(initial); !s.ok()) return s;
    store->origin_ = "configuration";
    store->routes_.assign(initial.routes().begin(), initial.routes().end());
    store->default_limits_ = initial.default_limits();
    for (Route& r : store->routes_) r.set_version(1);
    store->version_ = 1;
  }
  SortByName(&store->routes_);
  auto snapshot = BuildSnapshot(store->routes_, store->version_, stats, store->default_limits_);
  if (!snapshot.ok()) return snapshot.status();
  store->snapshot_ = *std::move(snapshot);
  return store;
}

dataplane::SnapshotPtr ConfigStore::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

uint64_t ConfigStore::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

void ConfigStore::SetListener(Listener listener) {
  std::lock_guard<std::mutex> writer(listener_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener_ = std::move(listener);
  }
  if (backend_ != nullptr && backend_->shared() && !watching_) {
    watching_ = true;
    backend_->Watch([this] { Resync(); });
  }
}

void ConfigStore::StopWatching() {
  // Not under listener_mu_: the watcher's Resync may be waiting for it.
  if (backend_ != nullptr) backend_->StopWatching();
}

std::string ConfigStore::store_kind() const {
  return backend_ != nullptr ? backend_->kind() : std::string();
}

bool ConfigStore::store_up() const { return backend_ == nullptr || backend_->up(); }

std::vector<Route> ConfigStore::ListRoutes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return routes_;
}

absl::StatusOr<Route> ConfigStore::GetRoute(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = FindByName(routes_, name);
  if (it == routes_.end()) {
    return absl::NotFoundError(absl::StrCat("route '", name, "' not found"));
  }
  return *it;
}

template <typename Change>
auto ConfigStore::WithRetries(const Change& change) -> decltype(change()) {
  for (int attempt = 1;; ++attempt) {
    auto result = change();
    if (result.ok() || !absl::IsAborted(result.status()) || backend_ == nullptr) return result;
    if (attempt >= kMaxAttempts) {
      return absl::AbortedError(absl::StrCat(backend_->origin(), ": changed by other replicas ",
                                             attempt, " times during this change; retry"));
    }
    // Another replica wrote first: take its config, then run the change again on top of it.
    if (auto s = ResyncLocked(); !s.ok()) return s;
  }
}

absl::StatusOr<ConfigStore::PutResult> ConfigStore::PutRoute(
    const Route& route, std::optional<uint64_t> expected_version) {
  auto translated = TranslateRoute(route, "route", wsgate::v1::Limits::default_instance());
  if (!translated.ok()) return translated.status();
  const std::string shape = std::move(translated->path_shape);

  std::unique_lock<std::mutex> writer(listener_mu_);
  return WithRetries([&]() -> absl::StatusOr<PutResult> {
  auto [routes, defaults, version] = CopyCurrent();
  auto it = FindByName(routes, route.name());
  const Route* existing = it == routes.end() ? nullptr : &*it;
  if (auto s = CheckExpectedVersion(route.name(), existing, expected_version); !s.ok()) return s;
  for (const Route& other : routes) {
    if (other.name() == route.name()) continue;
    if (dataplane::PathTemplate::Parse(other.path())->Shape() == shape) {
      return absl::InvalidArgumentError(absl::StrCat("route.path: '", route.path(),
                                                     "' overlaps route '", other.name(), "' path '",
                                                     other.path(), "' (same shape '", shape, "')"));
    }
  }

  const uint64_t new_version = version + 1;
  Route stored = route;
  stored.set_version(new_version);  // output-only: whatever the client sent is replaced
  const bool created = existing == nullptr;
  if (created) {
    routes.push_back(stored);
    SortByName(&routes);
  } else {
    routes[it - routes.begin()] = stored;
  }
  if (auto s = Commit(std::move(routes), std::move(defaults), new_version); !s.ok()) return s;
  return PutResult{stored, new_version, created};
  });
}

absl::StatusOr<uint64_t> ConfigStore::DeleteRoute(const std::string& name,
                                                  std::optional<uint64_t> expected_version) {
  std::unique_lock<std::mutex> writer(listener_mu_);
  return WithRetries([&]() -> absl::StatusOr<uint64_t> {
  auto [routes, defaults, version] = CopyCurrent();
  auto it = FindByName(routes, name);
  if (it == routes.end()) {
    return absl::NotFoundError(absl::StrCat("route '", name, "' not found"));
  }
  if (auto s = CheckExpectedVersion(name, &*it, expected_version); !s.ok()) return s;
  routes.erase(it);
  const uint64_t new_version = version + 1;
  if (auto s = Commit(std::move(routes), std::move(defaults), new_version); !s.ok()) return s;
  return new_version;
  });
}

ConfigStore::Current ConfigStore::CopyCurrent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {routes_, default_limits_, version_};
}

wsgate::v1::Limits ConfigStore::default_limits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return default_limits_;
}

absl::StatusOr<ConfigStore::LimitsChange> ConfigStore::UpdateLimits(
    const std::string& route,
    const std::function<absl::StatusOr<wsgate::v1::Limits>(const wsgate::v1::Limits&)>& modify) {
  std::unique_lock<std::mutex> writer(listener_mu_);
  return WithRetries([&]() -> absl::StatusOr<LimitsChange> {
  auto [routes, defaults, version] = CopyCurrent();
  LimitsChange change;
  Route* target = nullptr;
  if (route.empty()) {
    change.before = defaults;
  } else {
    auto it = std::find_if(routes.begin(), routes.end(),
                           [&](const Route& r) { return r.name() == route; });
    if (it == routes.end()) {
      return absl::NotFoundError(absl::StrCat("route '", route, "' not found"));
    }
    target = &*it;
    change.before = target->limits();
  }
  absl::StatusOr<wsgate::v1::Limits> after = modify(change.before);
  if (!after.ok()) return after.status();
  change.after = *std::move(after);
  if (target == nullptr) {
    if (auto s = ValidateLimits(change.after, "limits"); !s.ok()) return s;
  } else {
    Route candidate = *target;
    *candidate.mutable_limits() = change.after;
    // The route's own checks (kind-specific ones included), with the field named from "limits".
    if (auto s = ValidateRoute(candidate, "route"); !s.ok()) {
      std::string msg(s.message());
      if (msg.rfind("route.limits", 0) == 0) msg = msg.substr(6);
      return absl::InvalidArgumentError(msg);
    }
  }
  if (change.after.SerializeAsString() == change.before.SerializeAsString()) {
    change.config_version = version;  // nothing changed: no new version
    return change;
  }
  const uint64_t new_version = version + 1;
  if (target == nullptr) {
    defaults = change.after;
  } else {
    *target->mutable_limits() = change.after;
    target->set_version(new_version);
  }
  if (auto s = Commit(std::move(routes), std::move(defaults), new_version); !s.ok()) return s;
  change.config_version = new_version;
  return change;
  });
}

absl::Status ConfigStore::Commit(std::vector<Route> routes, wsgate::v1::Limits defaults,
                                 uint64_t version) {
  // Translate first: nothing is persisted that cannot be applied. The routes were validated, so
  // this fails only on a bug; it then refuses the change instead of stopping the gateway.
  auto translated = TranslateRoutes(routes, defaults);
  if (!translated.ok()) {
    spdlog::error("config version {} not applied: {}", version,
                  std::string(translated.status().message()));
    return absl::InternalError(absl::StrCat(
        "config version ", version, " does not translate: ", translated.status().message()));
  }
  // Persist next: a change that is acknowledged must survive a restart.
  if (backend_ != nullptr) {
    wsgate::v1::StoredState state;
    state.set_config_version(version);
    *state.mutable_routes() = {routes.begin(), routes.end()};
    *state.mutable_default_limits() = defaults;
    absl::StatusOr<bool> saved = backend_->Save(state, version - 1);
    if (!saved.ok()) {
      spdlog::error("config version {} not applied: {}", version,
                    std::string(saved.status().message()));
      return saved.status();
    }
    if (!*saved) {
      return absl::AbortedError(
          absl::StrCat(backend_->origin(), ": moved past version ", version - 1));
    }
  }
  Publish(std::move(routes), std::move(defaults), version, *std::move(translated));
  return absl::OkStatus();
}

void ConfigStore::Publish(std::vector<Route> routes, wsgate::v1::Limits defaults,
                          uint64_t version,
                          std::vector<std::shared_ptr<dataplane::RouteConfig>> translated) {
  dataplane::SnapshotPtr snapshot = MakeSnapshot(std::move(translated), version, stats_);
  Listener listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    routes_ = std::move(routes);
    default_limits_ = std::move(defaults);
    version_ = version;
    snapshot_ = snapshot;
    listener = listener_;
  }
  // Still under listener_mu_ (held by the caller): listener calls are serialized and in order.
  if (listener) listener(std::move(snapshot));
}

void ConfigStore::Resync() {
  std::unique_lock<std::mutex> writer(listener_mu_);
  if (auto s = ResyncLocked(); !s.ok()) {
    spdlog::warn("config store: not resynchronized: {}", std::string(s.message()));
  }
}

absl::Status ConfigStore::ResyncLocked() {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto loaded = backend_->Load();
    if (!loaded.ok()) return loaded.status();
    const uint64_t stored = loaded->has_value() ? (*loaded)->config_version() : 0;
    Current current = CopyCurrent();
    if (stored == current.version) return absl::OkStatus();
    if (stored > current.version) {
      std::vector<Route> routes((*loaded)->routes().begin(), (*loaded)->routes().end());
      SortByName(&routes);
      auto translated = TranslateRoutes(routes, (*loaded)->default_limits());
      if (!translated.ok()) {
        return absl::InternalError(absl::StrCat(backend_->origin(), " version ", stored,
                                                " does not translate: ",
                                                translated.status().message()));
      }
      spdlog::info("{}: config version {} (was {})", backend_->origin(), stored, current.version);
      Publish(std::move(routes), (*loaded)->default_limits(), stored, *std::move(translated));
      return absl::OkStatus();
    }
    // The store went back (restarted without persistence, restored from an old copy): versions
    // must never go backwards on the data planes, so the newest replica writes its config back.
    wsgate::v1::StoredState state;
    state.set_config_version(current.version);
    *state.mutable_routes() = {current.routes.begin(), current.routes.end()};
    *state.mutable_default_limits() = current.defaults;
    auto saved = backend_->Save(state, stored);
    if (!saved.ok()) return saved.status();
    if (*saved) {
      spdlog::warn("{}: was at version {}, behind this replica: re-seeded with version {}",
                   backend_->origin(), stored, current.version);
      return absl::OkStatus();
    }
  }
  return absl::AbortedError(absl::StrCat(backend_->origin(), ": keeps moving; not resynchronized"));
}

}  // namespace wsgate::controlplane
