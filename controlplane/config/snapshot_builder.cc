#include "controlplane/config/snapshot_builder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "controlplane/config/url.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::controlplane {
namespace {

using dataplane::RouteConfig;
using dataplane::RouteKind;

[[noreturn]] void Unvalidated(const wsgate::v1::Route& route, absl::string_view what) {
  // The store and the loader validate before building; reaching this is a bug, not bad input.
  spdlog::critical("BuildSnapshot: route '{}' was not validated: {}", route.name(),
                   std::string(what));
  std::abort();
}

RouteKind KindOf(const wsgate::v1::Route& route) {
  switch (route.kind_case()) {
    case wsgate::v1::Route::kWebsocket:
      return RouteKind::kWebSocket;
    case wsgate::v1::Route::kHttpBridge:
      return RouteKind::kHttpBridge;
    case wsgate::v1::Route::kExternalClient:
      return RouteKind::kExternalClient;
    case wsgate::v1::Route::kRoom:
      return RouteKind::kRoom;
    case wsgate::v1::Route::kPubsub:
      return RouteKind::kPubSub;
    case wsgate::v1::Route::kEcho:
      return RouteKind::kEcho;
    case wsgate::v1::Route::KIND_NOT_SET:
      break;
  }
  Unvalidated(route, "no kind set");
}

}  // namespace

dataplane::SnapshotPtr BuildSnapshot(const std::vector<wsgate::v1::Route>& routes, uint64_t version,
                                     dataplane::StatsRegistry* stats) {
  std::vector<std::shared_ptr<const RouteConfig>> out;
  out.reserve(routes.size());
  for (const auto& r : routes) {
    auto rc = std::make_shared<RouteConfig>();
    rc->name = r.name();
    rc->path = r.path();
    rc->kind = KindOf(r);
    rc->version = r.version();
    if (r.limits().max_message_bytes() != 0) {
      rc->limits.max_message_bytes = r.limits().max_message_bytes();
    }
    if (rc->kind == RouteKind::kWebSocket) {
      const auto& ws = r.websocket();
      for (const auto& u : ws.upstreams()) {
        auto parsed = ParseWsUrl(u);
        if (!parsed.ok()) Unvalidated(r, parsed.status().message());
        rc->websocket.upstreams.push_back(*std::move(parsed));
      }
      for (const auto& h : ws.forward_headers()) {
        rc->websocket.forward_headers.push_back(absl::AsciiStrToLower(h));
      }
      for (const auto& [name, value] : ws.set_headers()) {
        rc->websocket.set_headers.emplace_back(absl::AsciiStrToLower(name), value);
      }
      // Proto maps have no order; sorting keeps snapshots of the same config identical.
      std::sort(rc->websocket.set_headers.begin(), rc->websocket.set_headers.end());
      if (ws.connect_timeout_ms() != 0) {
        rc->websocket.connect_timeout = std::chrono::milliseconds(ws.connect_timeout_ms());
      }
    }
    rc->stats = stats != nullptr ? stats->ForRoute(r.name()) : nullptr;
    out.push_back(std::move(rc));
  }
  return std::make_shared<const dataplane::Snapshot>(version, std::move(out));
}

}  // namespace wsgate::controlplane
