#include "controlplane/config/snapshot_builder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "controlplane/config/url.h"
#include "dataplane/auth/jwt_hs256.h"
#include "dataplane/limits/token_bucket.h"
#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/routing/path_template.h"
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

dataplane::RouteLimits ToRouteLimits(const wsgate::v1::Route& r, const wsgate::v1::Limits& e) {
  dataplane::RouteLimits l;
  l.max_message_bytes = e.max_message_bytes();
  l.messages_per_second = e.messages_per_second();
  l.message_burst = e.message_burst();
  l.rate_policy = e.rate_policy() == wsgate::v1::Limits::RATE_POLICY_CLOSE
                      ? dataplane::RouteLimits::RatePolicy::kClose
                      : dataplane::RouteLimits::RatePolicy::kDrop;
  l.max_connections = e.max_connections();
  l.max_connections_per_client = e.max_connections_per_client();
  l.max_connections_per_address = e.max_connections_per_address();
  l.handshakes_per_second = e.handshakes_per_second();
  l.idle_timeout_ms = e.idle_timeout_ms();
  l.max_lifetime_ms = e.max_lifetime_ms();
  l.send_queue_bytes = e.send_queue_bytes();
  l.slow_consumer = e.slow_consumer_policy() == wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST
                        ? dataplane::RouteLimits::SlowConsumer::kDropOldest
                        : dataplane::RouteLimits::SlowConsumer::kClose;
  l.ping_interval_ms = e.ping_interval_ms();
  l.ping_timeout_ms = e.ping_timeout_ms();
  switch (r.kind_case()) {
    case wsgate::v1::Route::kRoom:
      l.client_id_param =
          r.room().client_id_param().empty() ? "client_id" : r.room().client_id_param();
      break;
    case wsgate::v1::Route::kPubsub:
      l.client_id_param =
          r.pubsub().session_param().empty() ? "session_id" : r.pubsub().session_param();
      break;
    case wsgate::v1::Route::kExternalClient:
      l.client_id_param = r.external_client().client_id_param().empty()
                              ? "client_id"
                              : r.external_client().client_id_param();
      break;
    default: {
      // Other kinds have no client id of their own: a `{client_id}` path parameter is one.
      auto t = dataplane::PathTemplate::Parse(r.path());
      if (t.ok()) {
        for (const auto& seg : t->segments()) {
          if (seg.is_param && seg.text == "client_id") l.client_id_param = seg.text;
        }
      }
      break;
    }
  }
  return l;
}

}  // namespace

wsgate::v1::Limits EffectiveLimits(const wsgate::v1::Route& route,
                                   const wsgate::v1::Limits& defaults) {
  wsgate::v1::Limits e = defaults;
  // proto3 MergeFrom copies exactly the scalar fields that are non-zero: "0 inherits".
  e.MergeFrom(route.limits());
  if (e.max_message_bytes() == 0) {
    // The seed's message size limit (1 MiB) on external_client unless a level sets its own.
    e.set_max_message_bytes(route.kind_case() == wsgate::v1::Route::kExternalClient
                                ? 1ull << 20
                                : dataplane::RouteLimits::kDefaultMaxMessageBytes);
  }
  if (e.messages_per_second() > 0 && e.message_burst() == 0) {
    e.set_message_burst(static_cast<uint32_t>(
        dataplane::limits::TokenBucket::DefaultBurst(e.messages_per_second())));
  }
  if (e.rate_policy() == wsgate::v1::Limits::RATE_POLICY_UNSPECIFIED) {
    e.set_rate_policy(wsgate::v1::Limits::RATE_POLICY_DROP);
  }
  // DROP_OLDEST needs the worker to hand the messages to the client itself (websocket, echo);
  // the other kinds inherit it from the defaults as CLOSE (ValidateRoute refuses it on them).
  const bool worker_sends = route.kind_case() == wsgate::v1::Route::kWebsocket ||
                            route.kind_case() == wsgate::v1::Route::kEcho;
  if (e.slow_consumer_policy() == wsgate::v1::Limits::SLOW_CONSUMER_POLICY_UNSPECIFIED ||
      (e.slow_consumer_policy() == wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST &&
       !worker_sends)) {
    e.set_slow_consumer_policy(wsgate::v1::Limits::SLOW_CONSUMER_POLICY_CLOSE);
  }
  if (e.ping_interval_ms() > 0 && e.ping_timeout_ms() == 0) {
    e.set_ping_timeout_ms(e.ping_interval_ms());
  }
  return e;
}

dataplane::SnapshotPtr BuildSnapshot(const std::vector<wsgate::v1::Route>& routes, uint64_t version,
                                     dataplane::StatsRegistry* stats,
                                     const wsgate::v1::Limits& defaults) {
  std::vector<std::shared_ptr<const RouteConfig>> out;
  out.reserve(routes.size());
  for (const auto& r : routes) {
    auto rc = std::make_shared<RouteConfig>();
    rc->name = r.name();
    rc->path = r.path();
    rc->kind = KindOf(r);
    rc->version = r.version();
    rc->limits = ToRouteLimits(r, EffectiveLimits(r, defaults));
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
  if (stats != nullptr) {
    // A deleted route's series leave /metrics with it.
    std::set<std::string> names;
    for (const auto& r : routes) names.insert(r.name());
    stats->RetainOnly(names);
  }
  return std::make_shared<const dataplane::Snapshot>(version, std::move(out));
}

}  // namespace wsgate::controlplane
