#include "controlplane/config/snapshot_builder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "controlplane/config/url.h"
#include "dataplane/auth/jwt_hs256.h"
#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
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

// The allow-list, TLS context and caps shared by the two outbound kinds. Runs on the control
// plane's thread: loading a CA file reads the disk, which a worker must never do.
template <typename KindProto>
std::shared_ptr<dataplane::outbound::OutboundRouteSettings> BuildOutbound(
    const wsgate::v1::Route& route, const KindProto& kind) {
  namespace outbound = dataplane::outbound;
  auto settings = std::make_shared<outbound::OutboundRouteSettings>();
  std::vector<std::string> targets(kind.allowed_targets().begin(), kind.allowed_targets().end());
  std::vector<std::string> ranges(kind.allowed_address_ranges().begin(),
                                  kind.allowed_address_ranges().end());
  auto policy = outbound::TargetPolicy::Create(targets, ranges);
  if (!policy.ok()) Unvalidated(route, policy.status().message());
  settings->policy = *std::move(policy);
  outbound::TlsSettings tls;
  switch (kind.tls().verify()) {
    case wsgate::v1::OutboundTls::VERIFY_CA_FILE:
      tls.verify = outbound::TlsSettings::Verify::kCaFile;
      tls.ca_file = kind.tls().ca_file();
      break;
    case wsgate::v1::OutboundTls::VERIFY_OFF:
      tls.verify = outbound::TlsSettings::Verify::kOff;
      break;
    default:
      tls.verify = outbound::TlsSettings::Verify::kSystemStore;
      break;
  }
  auto ctx = outbound::MakeTlsContext(tls);
  if (ctx.ok()) {
    settings->tls = *std::move(ctx);
  } else {
    // A CA file that vanished after validation: https targets of this route fail as
    // unreachable (the documented meaning of a null context) instead of the gateway stopping.
    spdlog::error("route {}: TLS context: {}; https targets will be unreachable", route.name(),
                  std::string(ctx.status().message()));
  }
  return settings;
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
    rc->limits.ping_interval_ms = r.limits().ping_interval_ms();
    rc->limits.ping_timeout_ms = r.limits().ping_timeout_ms();
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
    if (rc->kind == RouteKind::kHttpBridge) {
      const auto& hb = r.http_bridge();
      auto settings = BuildOutbound(r, hb);
      if (hb.max_request_bytes() != 0) settings->max_request_bytes = hb.max_request_bytes();
      if (hb.max_response_bytes() != 0) settings->max_response_bytes = hb.max_response_bytes();
      settings->follow_redirects = hb.follow_redirects();
      if (hb.max_redirects() != 0) settings->max_redirects = static_cast<int>(hb.max_redirects());
      rc->outbound = std::move(settings);
      if (hb.max_in_flight() != 0) rc->http_bridge.max_in_flight = hb.max_in_flight();
      if (hb.request_timeout_ms() != 0) {
        rc->http_bridge.request_timeout = std::chrono::milliseconds(hb.request_timeout_ms());
      }
    }
    if (rc->kind == RouteKind::kExternalClient) {
      const auto& ec = r.external_client();
      rc->outbound = BuildOutbound(r, ec);
      auto& x = rc->external_client;
      if (ec.max_connections_per_client() != 0) {
        x.max_connections_per_client = ec.max_connections_per_client();
      }
      if (ec.connect_timeout_ms() != 0) {
        x.connect_timeout = std::chrono::milliseconds(ec.connect_timeout_ms());
      }
      if (ec.messages_per_minute() != 0) x.messages_per_minute = ec.messages_per_minute();
      if (!ec.client_id_param().empty()) x.client_id_param = ec.client_id_param();
      // The seed's message size limit (1 MiB) unless the route sets its own.
      if (r.limits().max_message_bytes() == 0) rc->limits.max_message_bytes = 1ull << 20;
    }
    if (rc->kind == RouteKind::kRoom) {
      const auto& room = r.room();
      auto& x = rc->room;
      x.room_param = room.room_param();
      if (!room.client_id_param().empty()) x.client_id_param = room.client_id_param();
      if (!room.self_template().empty()) x.self_template = room.self_template();
      if (!room.broadcast_template().empty()) x.broadcast_template = room.broadcast_template();
      if (!room.leave_template().empty()) x.leave_template = room.leave_template();
      x.replace_duplicate = room.on_duplicate() == wsgate::v1::RoomRoute::DUPLICATE_REPLACE;
      x.json_format = room.format() == wsgate::v1::RoomRoute::FORMAT_JSON;
    }
    if (rc->kind == RouteKind::kPubSub) {
      const auto& ps = r.pubsub();
      auto& x = rc->pubsub;
      const std::string session = ps.session_param().empty() ? "session_id" : ps.session_param();
      x.down_channel = ps.down_channel().empty() ? "session:{" + session + "}:down"
                                                 : ps.down_channel();
      x.up_channel = ps.up_channel().empty() ? "session:{" + session + "}:up" : ps.up_channel();
      if (ps.disable_up()) x.up_channel.clear();
      if (ps.subscribe_timeout_ms() != 0) {
        x.subscribe_timeout = std::chrono::milliseconds(ps.subscribe_timeout_ms());
      }
      if (ps.max_queued_bytes() != 0) x.max_queued_bytes = ps.max_queued_bytes();
      if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN) {
        x.auth = dataplane::PubSubSettings::Auth::kRedisToken;
        x.auth_key = ps.auth_key().empty() ? "session:{" + session + "}:auth" : ps.auth_key();
      }
      x.session_param = session;
      if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_JWT_HS256) {
        x.auth = dataplane::PubSubSettings::Auth::kJwtHs256;
        // Re-read on every apply, so a rotated secret takes effect with the next config change.
        // Validation read it a moment ago; if it vanished since, the route fails closed (503).
        std::string error;
        if (!dataplane::auth::LoadJwtSecret(ps.jwt_secret_file(), ps.jwt_secret_env(),
                                            &x.jwt_secret, &error)) {
          spdlog::error("route {}: JWT secret unavailable ({}); its handshakes get 503",
                        r.name(), error);
        }
      }
      x.token_query_param = ps.token_query_param();
      x.token_subprotocol = ps.token_subprotocol();
      x.validate_json = ps.validate_json();
      x.refuse_binary = ps.refuse_binary();
    }
    rc->stats = stats != nullptr ? stats->ForRoute(r.name()) : nullptr;
    out.push_back(std::move(rc));
  }
  return std::make_shared<const dataplane::Snapshot>(version, std::move(out));
}

}  // namespace wsgate::controlplane
