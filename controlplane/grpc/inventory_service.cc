#include "controlplane/grpc/inventory_service.h"

#include <set>

#include "controlplane/grpc/access.h"
#include "controlplane/grpc/status.h"

namespace wsgate::controlplane {

void RateSampler::Sample(std::chrono::steady_clock::time_point now) {
  Point p;
  p.at = now;
  stats_->ForEach([&](const dataplane::RouteStats& rs) {
    const dataplane::RouteTotals t = rs.Fold();
    using dataplane::Direction;
    Totals& o = p.routes[rs.route()];
    o.v = {t.messages[static_cast<int>(Direction::kFromClient)],
           t.messages[static_cast<int>(Direction::kToClient)],
           t.bytes[static_cast<int>(Direction::kFromClient)],
           t.bytes[static_cast<int>(Direction::kToClient)]};
  });
  std::lock_guard<std::mutex> lock(mu_);
  ring_.push_back(std::move(p));
  while (ring_.size() > kRingSize) ring_.pop_front();
}

RateSampler::Rates RateSampler::RatesOf(const std::string& route,
                                        std::chrono::seconds window) const {
  Rates out;
  std::lock_guard<std::mutex> lock(mu_);
  if (ring_.size() < 2) return out;
  const Point& newest = ring_.back();
  // The oldest sample that is at most `window` (plus half a tick of jitter) older than the newest.
  const Point* base = nullptr;
  for (const Point& p : ring_) {
    if (newest.at - p.at <= window + std::chrono::milliseconds(500)) {
      base = &p;
      break;
    }
  }
  if (base == nullptr || base == &newest) return out;
  const double dt = std::chrono::duration<double>(newest.at - base->at).count();
  out.window_seconds = dt;
  auto now_it = newest.routes.find(route);
  if (now_it == newest.routes.end()) return out;
  auto then_it = base->routes.find(route);
  for (size_t i = 0; i < 4; ++i) {
    const uint64_t then = then_it == base->routes.end() ? 0 : then_it->second.v[i];
    const uint64_t now = now_it->second.v[i];
    out.per_second[i] = now >= then ? static_cast<double>(now - then) / dt : 0;
  }
  return out;
}

InventoryServiceImpl::InventoryServiceImpl(const ConfigStore* store,
                                           dataplane::DataPlane* data_plane,
                                           const dataplane::StatsRegistry* stats,
                                           std::string build_version, LimitHitsFn limit_hits,
                                           bool sample_thread)
    : store_(store),
      data_plane_(data_plane),
      stats_(stats),
      build_version_(std::move(build_version)),
      limit_hits_(std::move(limit_hits)),
      sampler_(stats) {
  sampler_.Sample();
  if (!sample_thread) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    auto next = std::chrono::steady_clock::now();
    for (;;) {
      next += std::chrono::seconds(1);
      if (cv_.wait_until(lock, next, [this] { return stop_; })) return;
      lock.unlock();
      sampler_.Sample();
      lock.lock();
    }
  });
}

InventoryServiceImpl::~InventoryServiceImpl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

void SetRates(const RateSampler::Rates& r, wsgate::v1::Rates* out) {
  out->set_window_seconds(r.window_seconds);
  out->set_messages_in_per_second(r.per_second[0]);
  out->set_messages_out_per_second(r.per_second[1]);
  out->set_bytes_in_per_second(r.per_second[2]);
  out->set_bytes_out_per_second(r.per_second[3]);
}

}  // namespace

grpc::Status InventoryServiceImpl::GetInventory(grpc::ServerContext* context,
                                                const wsgate::v1::GetInventoryRequest*,
                                                wsgate::v1::Inventory* response) {
  if (grpc::Status denied =
          CheckAccess(tokens_, *context, Access::kRead, "wsgate.v1.InventoryService/GetInventory");
      !denied.ok()) {
    return denied;
  }
  response->set_config_version(data_plane_ != nullptr ? data_plane_->applied_version()
                                                      : store_->version());
  response->set_workers(
      static_cast<uint32_t>(data_plane_ != nullptr ? data_plane_->workers() : stats_->workers()));
  response->set_build_version(build_version_);
  response->set_uptime_seconds(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count()));
  if (data_plane_ != nullptr) {
    if (dataplane::bus::MessageBus* bus = data_plane_->message_bus()) {
      response->set_bus(bus->kind());
      response->set_bus_up(bus->up());
    }
  }

  // Sessions by state: a data plane without a registry (tests' fakes) reports none.
  std::map<std::string, dataplane::sessions::RouteSessionCounts> by_state;
  if (data_plane_ != nullptr) {
    auto counts = data_plane_->CountSessions();
    if (counts.ok()) {
      by_state = *std::move(counts);
    } else if (counts.status().code() != absl::StatusCode::kUnimplemented) {
      return ToGrpcStatus(counts.status());
    }
  }
  std::map<std::string, std::map<std::string, uint64_t>> hits;
  if (limit_hits_) {
    for (const auto& [key, n] : limit_hits_()) hits[key.first][key.second] = n;
  }

  std::set<std::string> configured;
  for (const wsgate::v1::Route& r : store_->ListRoutes()) configured.insert(r.name());

  // The registry keeps the counters of every route ever configured (connections may outlive
  // their route). Report the configured routes, plus deleted ones that still hold connections.
  uint64_t active_total = 0;
  stats_->ForEach([&](const dataplane::RouteStats& rs) {
    const dataplane::RouteTotals t = rs.Fold();
    // The gauge is signed; a negative sum would be a counting bug, but it must not be reported
    // as a huge unsigned number.
    const uint64_t active =
        t.connections_active > 0 ? static_cast<uint64_t>(t.connections_active) : 0;
    auto states = by_state.find(rs.route());
    if (active == 0 && configured.count(rs.route()) == 0 && states == by_state.end()) return;
    active_total += active;
    wsgate::v1::RouteInventory* ri = response->add_routes();
    ri->set_route(rs.route());
    ri->set_active_connections(active);
    ri->set_total_connections(
        t.connections[static_cast<int>(dataplane::ConnectionOutcome::kAccepted)]);
    uint64_t upstream =
        t.external_connections_active > 0 ? static_cast<uint64_t>(t.external_connections_active)
                                          : 0;
    if (states != by_state.end()) {
      ri->set_connecting(states->second.connecting);
      ri->set_open(states->second.open);
      ri->set_closing(states->second.closing);
      upstream += states->second.upstream_open;
    }
    ri->set_upstream_connections(upstream);
    SetRates(sampler_.RatesOf(rs.route(), std::chrono::seconds(10)), ri->mutable_last_10s());
    SetRates(sampler_.RatesOf(rs.route(), std::chrono::seconds(60)), ri->mutable_last_1m());
    if (auto h = hits.find(rs.route()); h != hits.end()) {
      for (const auto& [limit, n] : h->second) (*ri->mutable_limit_hits())[limit] = n;
    }
  });
  response->set_active_connections(active_total);
  if (data_planes_) data_planes_(response);
  return grpc::Status::OK;
}

}  // namespace wsgate::controlplane
