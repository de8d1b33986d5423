#include "controlplane/config/route_translator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text/token.h"
#include "controlplane/config/config_validator.h"
#include "controlplane/config/url.h"
#include "controlplane/config/jwt_secret.h"
#include "dataplane/route_building.h"
#include "dataplane/routing/path_template.h"

namespace wsgate::controlplane {
namespace {

using dataplane::RouteConfig;
using dataplane::RouteKind;
using wsgate::v1::Route;

constexpr uint32_t kMaxConnectTimeoutMs = 300000;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return lower_or_digit(c) || c == '.' || c == '_' || c == '-'; });
}

// Headers the proxy itself owns on the upstream handshake: hop-by-hop headers and the WebSocket
// handshake. Forwarding or overriding them would break the handshake or smuggle a different one.
bool IsReservedHeader(std::string_view name) {
  static const char* const kReserved[] = {"host",       "upgrade",           "connection",
                                          "keep-alive", "proxy-connection",  "te",
                                          "trailer",    "transfer-encoding", "content-length"};
  std::string lower = absl::AsciiStrToLower(std::string(name));
  if (absl::StartsWith(lower, "sec-websocket-")) return true;
  return std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved);
}

absl::Status ValidateHeaderName(const std::string& field, const std::string& name) {
  if (!text::IsToken(name)) {  // RFC 9110 token
    return Invalid(field, absl::StrCat("'", name, "' is not a valid header name"));
  }
  if (IsReservedHeader(name)) {
    return Invalid(field, absl::StrCat("header '", name,
                                       "' is managed by the proxy (hop-by-hop or WebSocket "
                                       "handshake) and cannot be forwarded or set"));
  }
  return absl::OkStatus();
}


// A route's `tls` block: which trust store verifies its TLS peers. Shared by the websocket
// kind (wss:// upstreams) and the outbound kinds (https:// and wss:// targets).
struct TlsChoice {
  dataplane::TlsVerify verify = dataplane::TlsVerify::kSystemStore;
  std::string ca_file;
};

absl::StatusOr<TlsChoice> TranslateTls(const wsgate::v1::OutboundTls& tls,
                                       const std::string& field) {
  TlsChoice choice;
  if (tls.verify() == wsgate::v1::OutboundTls::VERIFY_CA_FILE) {
    if (tls.ca_file().empty()) {
      return Invalid(field + ".tls.ca_file", "required when verify is VERIFY_CA_FILE");
    }
    choice.verify = dataplane::TlsVerify::kCaFile;
    choice.ca_file = tls.ca_file();
  } else if (!tls.ca_file().empty()) {
    return Invalid(field + ".tls.ca_file", "only meaningful with verify: VERIFY_CA_FILE");
  } else if (tls.verify() == wsgate::v1::OutboundTls::VERIFY_OFF) {
    choice.verify = dataplane::TlsVerify::kOff;
  }
  return choice;
}

// What a trust store that could not be loaded means. On admission a CA file that cannot be read
// or parsed refuses the route here, instead of every TLS connection on it failing later. On a
// rebuild (the file vanished after admission, or the system store cannot be loaded) the route is
// built without one: its TLS peers are unreachable, and the reason is logged.
absl::Status TlsLoadOutcome(const Route& route, const TlsChoice& choice, const std::string& field,
                            UnreadableFiles files, const absl::Status& loaded) {
  if (loaded.ok()) return absl::OkStatus();
  if (files == UnreadableFiles::kRefuse && choice.verify == dataplane::TlsVerify::kCaFile) {
    return Invalid(field + ".tls.ca_file",
                   absl::StrCat("'", choice.ca_file, "': ", loaded.message()));
  }
  spdlog::error("route {}: TLS context: {}; TLS targets will be unreachable", route.name(),
                std::string(loaded.message()));
  return absl::OkStatus();
}

absl::Status TranslateWebSocket(const Route& route, const std::string& field,
                                UnreadableFiles files, dataplane::WebSocketProxySettings* out) {
  const wsgate::v1::WebSocketRoute& ws = route.websocket();
  if (ws.upstreams_size() == 0) {
    return Invalid(field + ".upstreams", "at least one upstream ws:// URL is required");
  }
  for (int i = 0; i < ws.upstreams_size(); ++i) {
    auto url = ParseWsUrl(ws.upstreams(i));
    if (!url.ok()) {
      return Invalid(absl::StrCat(field, ".upstreams[", i, "]"), url.status().message());
    }
    out->upstreams.push_back(*std::move(url));
  }
  if (ws.connect_timeout_ms() > kMaxConnectTimeoutMs) {
    return Invalid(field + ".connect_timeout_ms",
                   absl::StrCat("must be 0 (default 5000) or 1..", kMaxConnectTimeoutMs, ", got ",
                                ws.connect_timeout_ms()));
  }
  if (ws.connect_timeout_ms() != 0) {
    out->connect_timeout = std::chrono::milliseconds(ws.connect_timeout_ms());
  }
  std::set<std::string> seen;
  for (int i = 0; i < ws.forward_headers_size(); ++i) {
    const std::string f = absl::StrCat(field, ".forward_headers[", i, "]");
    if (auto s = ValidateHeaderName(f, ws.forward_headers(i)); !s.ok()) return s;
    std::string lower = absl::AsciiStrToLower(ws.forward_headers(i));
    if (!seen.insert(lower).second) {
      return Invalid(f, absl::StrCat("header '", ws.forward_headers(i), "' is listed twice"));
    }
    out->forward_headers.push_back(std::move(lower));
  }
  // Proto maps have no order; check in name order so the first error is always the same one.
  std::map<std::string, std::string> set_headers(ws.set_headers().begin(), ws.set_headers().end());
  std::set<std::string> seen_set;
  for (const auto& [name, value] : set_headers) {
    const std::string f = absl::StrCat(field, ".set_headers[\"", name, "\"]");
    if (auto s = ValidateHeaderName(f, name); !s.ok()) return s;
    std::string lower = absl::AsciiStrToLower(name);
    if (!seen_set.insert(lower).second) {
      return Invalid(f,
                     absl::StrCat("header '", name, "' is set twice (names are case-insensitive)"));
    }
    for (char c : value) {
      unsigned char u = static_cast<unsigned char>(c);
      if (c == '\r' || c == '\n') {
        return Invalid(f, "value must not contain CR or LF");
      }
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return Invalid(f, "value must not contain control characters");
      }
    }
    out->set_headers.emplace_back(std::move(lower), value);
  }
  // Sorted by lowercased name, so snapshots of the same config are identical.
  std::sort(out->set_headers.begin(), out->set_headers.end());

  const bool secure = std::any_of(out->upstreams.begin(), out->upstreams.end(),
                                  [](const dataplane::UpstreamUrl& u) { return u.secure; });
  const std::string& name = ws.tls().server_name();
  if (!name.empty()) {
    const bool ok = name.size() <= 253 && std::all_of(name.begin(), name.end(), [](char c) {
      return absl::ascii_isalnum(c) || c == '-' || c == '.';
    });
    if (!ok) {
      return Invalid(field + ".tls.server_name", absl::StrCat("'", name, "' is not a host name"));
    }
  }
  if (ws.has_tls() && !secure) {
    return Invalid(field + ".tls", "only meaningful with a wss:// upstream");
  }
  if (secure) {
    absl::StatusOr<TlsChoice> choice = TranslateTls(ws.tls(), field);
    if (!choice.ok()) return choice.status();
    auto ctx = dataplane::MakeUpstreamTls(choice->verify, choice->ca_file);
    if (auto s = TlsLoadOutcome(route, *choice, field, files, ctx.status()); !s.ok()) return s;
    if (ctx.ok()) out->tls = *std::move(ctx);
    out->server_name = name;
  }
  return absl::OkStatus();
}

constexpr uint32_t kMaxInFlight = 1024;
constexpr uint32_t kMaxRequestTimeoutMs = 600000;
constexpr uint32_t kMaxRedirects = 20;
constexpr uint64_t kMaxBodyBytes = 256ull << 20;
constexpr uint32_t kMaxExternalPerClient = 1000;
constexpr uint32_t kMaxMessagesPerMinute = 1000000;

// Allow-list, address ranges and TLS: what http_bridge and external_client share. Runs on the
// control plane's thread: loading a CA file reads the disk, which a worker must never do.
template <typename KindProto>
absl::Status TranslateOutbound(const Route& route, const KindProto& kind, const std::string& field,
                               const std::set<std::string>& schemes, UnreadableFiles files,
                               dataplane::OutboundRouteBuilder* builder) {
  if (kind.allowed_targets_size() == 0) {
    return Invalid(field + ".allowed_targets",
                   "at least one target is required (e.g. \"https://api.example.com/v1\")");
  }
  for (int i = 0; i < kind.allowed_targets_size(); ++i) {
    const std::string f = absl::StrCat(field, ".allowed_targets[", i, "]");
    absl::StatusOr<std::string> scheme = builder->AddTarget(kind.allowed_targets(i));
    if (!scheme.ok()) return Invalid(f, scheme.status().message());
    if (schemes.count(*scheme) == 0) {
      return Invalid(f, absl::StrCat("scheme '", *scheme, "' cannot be used by this kind (",
                                     absl::StrJoin(schemes, ", "), ")"));
    }
  }
  std::set<std::string> seen;
  for (int i = 0; i < kind.allowed_address_ranges_size(); ++i) {
    const std::string f = absl::StrCat(field, ".allowed_address_ranges[", i, "]");
    if (auto s = builder->AddAddressRange(kind.allowed_address_ranges(i)); !s.ok()) {
      return Invalid(f, s.message());
    }
    if (!seen.insert(kind.allowed_address_ranges(i)).second) {
      return Invalid(f, absl::StrCat("'", kind.allowed_address_ranges(i), "' is listed twice"));
    }
  }

  if (!kind.tls().server_name().empty()) {
    return Invalid(field + ".tls.server_name", "only the websocket kind uses it");
  }
  absl::StatusOr<TlsChoice> choice = TranslateTls(kind.tls(), field);
  if (!choice.ok()) return choice.status();
  return TlsLoadOutcome(route, *choice, field, files,
                        builder->SetTls(choice->verify, choice->ca_file));
}

absl::Status TranslateHttpBridge(const Route& route, const std::string& field,
                                 UnreadableFiles files, RouteConfig* rc) {
  const auto& hb = route.http_bridge();
  dataplane::OutboundRouteBuilder outbound;
  if (auto s = TranslateOutbound(route, hb, field, {"http", "https"}, files, &outbound); !s.ok()) {
    return s;
  }
  if (hb.max_in_flight() > kMaxInFlight) {
    return Invalid(
        field + ".max_in_flight",
        absl::StrCat("must be 0 (default 16) or 1..", kMaxInFlight, ", got ", hb.max_in_flight()));
  }
  if (hb.max_in_flight() != 0) rc->http_bridge.max_in_flight = hb.max_in_flight();
  if (hb.request_timeout_ms() > kMaxRequestTimeoutMs) {
    return Invalid(field + ".request_timeout_ms",
                   absl::StrCat("must be 0 (default 30000) or 1..", kMaxRequestTimeoutMs, ", got ",
                                hb.request_timeout_ms()));
  }
  if (hb.request_timeout_ms() != 0) {
    rc->http_bridge.request_timeout = std::chrono::milliseconds(hb.request_timeout_ms());
  }
  if (hb.max_redirects() > kMaxRedirects) {
    return Invalid(
        field + ".max_redirects",
        absl::StrCat("must be 0 (default 5) or 1..", kMaxRedirects, ", got ", hb.max_redirects()));
  }
  if (hb.max_redirects() != 0 && !hb.follow_redirects()) {
    return Invalid(field + ".max_redirects", "only meaningful with follow_redirects: true");
  }
  outbound.SetRedirects(hb.follow_redirects(), hb.max_redirects());
  if (hb.max_request_bytes() > kMaxBodyBytes) {
    return Invalid(field + ".max_request_bytes",
                   absl::StrCat("must be 0 (default 1048576) or 1..", kMaxBodyBytes, ", got ",
                                hb.max_request_bytes()));
  }
  if (hb.max_response_bytes() > kMaxBodyBytes) {
    return Invalid(field + ".max_response_bytes",
                   absl::StrCat("must be 0 (default 10485760) or 1..", kMaxBodyBytes, ", got ",
                                hb.max_response_bytes()));
  }
  outbound.SetBodyCaps(hb.max_request_bytes(), hb.max_response_bytes());
  rc->outbound = outbound.Build();
  return absl::OkStatus();
}

absl::Status TranslateExternalClient(const Route& route, const std::string& field,
                                     UnreadableFiles files, RouteConfig* rc) {
  const auto& ec = route.external_client();
  const std::string& path = route.path();
  dataplane::OutboundRouteBuilder outbound;
  if (auto s = TranslateOutbound(route, ec, field, {"ws", "wss"}, files, &outbound); !s.ok()) {
    return s;
  }
  auto& x = rc->external_client;
  if (ec.max_connections_per_client() > kMaxExternalPerClient) {
    return Invalid(field + ".max_connections_per_client",
                   absl::StrCat("must be 0 (default 10) or 1..", kMaxExternalPerClient, ", got ",
                                ec.max_connections_per_client()));
  }
  if (ec.max_connections_per_client() != 0) {
    x.max_connections_per_client = ec.max_connections_per_client();
  }
  if (ec.connect_timeout_ms() > kMaxConnectTimeoutMs) {
    return Invalid(field + ".connect_timeout_ms",
                   absl::StrCat("must be 0 (default 30000) or 1..", kMaxConnectTimeoutMs, ", got ",
                                ec.connect_timeout_ms()));
  }
  if (ec.connect_timeout_ms() != 0) {
    x.connect_timeout = std::chrono::milliseconds(ec.connect_timeout_ms());
  }
  if (ec.messages_per_minute() > kMaxMessagesPerMinute) {
    return Invalid(field + ".messages_per_minute",
                   absl::StrCat("must be 0 (default 100) or 1..", kMaxMessagesPerMinute, ", got ",
                                ec.messages_per_minute()));
  }
  if (ec.messages_per_minute() != 0) x.messages_per_minute = ec.messages_per_minute();
  const std::string param = ec.client_id_param().empty() ? "client_id" : ec.client_id_param();
  if (path.find(absl::StrCat("{", param, "}")) == std::string::npos) {
    return Invalid(
        ec.client_id_param().empty() ? field : field + ".client_id_param",
        absl::StrCat("the path '", path, "' has no {", param, "} parameter to name the client"));
  }
  x.client_id_param = param;
  rc->outbound = outbound.Build();
  return absl::OkStatus();
}

// Kinds `room` and `pubsub`.
constexpr uint32_t kMaxSubscribeTimeoutMs = 300000;
constexpr uint64_t kMaxQueuedBytes = 1ull << 30;

bool PathHasParam(const std::string& path, const std::string& param) {
  return path.find(absl::StrCat("{", param, "}")) != std::string::npos;
}

// A channel template: text with {name} placeholders, each naming a parameter of the path.
absl::Status ValidateChannelTemplate(const std::string& tmpl, const std::string& field,
                                     const std::string& path) {
  size_t pos = 0;
  while (pos < tmpl.size()) {
    size_t open = tmpl.find_first_of("{}", pos);
    if (open == std::string::npos) break;
    if (tmpl[open] == '}') return Invalid(field, absl::StrCat("'", tmpl, "': unbalanced '}'"));
    size_t close = tmpl.find('}', open);
    if (close == std::string::npos) {
      return Invalid(field, absl::StrCat("'", tmpl, "': unbalanced '{'"));
    }
    std::string name = tmpl.substr(open + 1, close - open - 1);
    if (name.empty() || !PathHasParam(path, name)) {
      return Invalid(field, absl::StrCat("'", tmpl, "': {", name,
                                         "} is not a parameter of the path '", path, "'"));
    }
    pos = close + 1;
  }
  return absl::OkStatus();
}

absl::Status TranslateRoom(const Route& route, const std::string& field, RouteConfig* rc) {
  const auto& room = route.room();
  const std::string& path = route.path();
  const std::string client = room.client_id_param().empty() ? "client_id" : room.client_id_param();
  if (!PathHasParam(path, client)) {
    return Invalid(
        room.client_id_param().empty() ? field : field + ".client_id_param",
        absl::StrCat("the path '", path, "' has no {", client, "} parameter to name the client"));
  }
  if (!room.room_param().empty() && !PathHasParam(path, room.room_param())) {
    return Invalid(field + ".room_param", absl::StrCat("the path '", path, "' has no {",
                                                       room.room_param(), "} parameter"));
  }
  if (room.room_param() == client) {
    return Invalid(field + ".room_param", "must differ from client_id_param");
  }
  if (room.format() == wsgate::v1::RoomRoute::FORMAT_JSON) {
    for (const auto& [name, value] : {std::pair{"self_template", &room.self_template()},
                                      std::pair{"broadcast_template", &room.broadcast_template()},
                                      std::pair{"leave_template", &room.leave_template()}}) {
      if (!value->empty()) {
        return Invalid(field + "." + name, "meaningless with format: FORMAT_JSON");
      }
    }
  }
  auto& x = rc->room;
  x.room_param = room.room_param();
  x.client_id_param = client;
  if (!room.self_template().empty()) x.self_template = room.self_template();
  if (!room.broadcast_template().empty()) x.broadcast_template = room.broadcast_template();
  if (!room.leave_template().empty()) x.leave_template = room.leave_template();
  x.replace_duplicate = room.on_duplicate() == wsgate::v1::RoomRoute::DUPLICATE_REPLACE;
  x.json_format = room.format() == wsgate::v1::RoomRoute::FORMAT_JSON;
  return absl::OkStatus();
}

absl::Status TranslatePubSub(const Route& route, const std::string& field, UnreadableFiles files,
                             RouteConfig* rc) {
  const auto& ps = route.pubsub();
  const std::string& path = route.path();
  auto& x = rc->pubsub;
  const std::string session = ps.session_param().empty() ? "session_id" : ps.session_param();
  if (!PathHasParam(path, session)) {
    return Invalid(
        ps.session_param().empty() ? field : field + ".session_param",
        absl::StrCat("the path '", path, "' has no {", session, "} parameter to name the session"));
  }
  x.session_param = session;
  if (auto s = ValidateChannelTemplate(ps.down_channel(), field + ".down_channel", path); !s.ok()) {
    return s;
  }
  x.down_channel = ps.down_channel().empty() ? "session:{" + session + "}:down" : ps.down_channel();
  if (auto s = ValidateChannelTemplate(ps.up_channel(), field + ".up_channel", path); !s.ok()) {
    return s;
  }
  if (ps.disable_up() && !ps.up_channel().empty()) {
    return Invalid(field + ".up_channel", "meaningless with disable_up: true");
  }
  x.up_channel = ps.disable_up()           ? ""
                 : ps.up_channel().empty() ? "session:{" + session + "}:up"
                                           : ps.up_channel();
  if (ps.subscribe_timeout_ms() > kMaxSubscribeTimeoutMs) {
    return Invalid(field + ".subscribe_timeout_ms",
                   absl::StrCat("must be 0 (default 5000) or 1..", kMaxSubscribeTimeoutMs, ", got ",
                                ps.subscribe_timeout_ms()));
  }
  if (ps.subscribe_timeout_ms() != 0) {
    x.subscribe_timeout = std::chrono::milliseconds(ps.subscribe_timeout_ms());
  }
  if (auto s = ValidateChannelTemplate(ps.auth_key(), field + ".auth_key", path); !s.ok()) {
    return s;
  }
  if (!ps.auth_key().empty() && ps.auth() != wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN) {
    return Invalid(field + ".auth_key", "only meaningful with auth: AUTH_REDIS_TOKEN");
  }
  if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN) {
    x.auth = dataplane::PubSubSettings::Auth::kRedisToken;
    x.auth_key = ps.auth_key().empty() ? "session:{" + session + "}:auth" : ps.auth_key();
  }
  if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_JWT_HS256) {
    x.auth = dataplane::PubSubSettings::Auth::kJwtHs256;
    // Read on every translation, so a rotated secret takes effect with the next config change.
    // On admission an unreadable or empty secret refuses the config instead of a route that
    // answers 503 to everyone; on a rebuild the route fails closed (503).
    absl::StatusOr<std::string> secret = LoadJwtSecret(ps.jwt_secret_file(), ps.jwt_secret_env());
    if (secret.ok()) {
      x.jwt_secret = *std::move(secret);
    } else {
      const std::string error(secret.status().message());
      // Both or neither of file and variable named is the config's fault, whatever the mode.
      const bool misconfigured = ps.jwt_secret_file().empty() == ps.jwt_secret_env().empty();
      if (files == UnreadableFiles::kRefuse || misconfigured) {
        const char* name = !ps.jwt_secret_env().empty() && ps.jwt_secret_file().empty()
                               ? ".jwt_secret_env"
                               : ".jwt_secret_file";
        return Invalid(field + name, error);
      }
      spdlog::error("route {}: JWT secret unavailable ({}); its handshakes get 503", route.name(),
                    error);
    }
  } else if (!ps.jwt_secret_file().empty() || !ps.jwt_secret_env().empty()) {
    return Invalid(field + (ps.jwt_secret_file().empty() ? ".jwt_secret_env" : ".jwt_secret_file"),
                   "only meaningful with auth: AUTH_JWT_HS256");
  }
  if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_NONE &&
      (!ps.token_query_param().empty() || ps.token_subprotocol())) {
    return Invalid(field + (ps.token_subprotocol() ? ".token_subprotocol" : ".token_query_param"),
                   "only meaningful with an auth mode");
  }
  for (char c : ps.token_query_param()) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return Invalid(
          field + ".token_query_param",
          absl::StrCat("'", ps.token_query_param(), "': letters, digits, '_', '-' and '.' only"));
    }
  }
  x.token_query_param = ps.token_query_param();
  x.token_subprotocol = ps.token_subprotocol();
  if (ps.max_queued_bytes() > kMaxQueuedBytes) {
    return Invalid(field + ".max_queued_bytes",
                   absl::StrCat("must be 0 (default 10485760) or 1..", kMaxQueuedBytes, ", got ",
                                ps.max_queued_bytes()));
  }
  if (ps.max_queued_bytes() != 0) x.max_queued_bytes = ps.max_queued_bytes();
  x.validate_json = ps.validate_json();
  x.refuse_binary = ps.refuse_binary();
  return absl::OkStatus();
}

// What a route's kind cannot honour: drop_oldest needs the messages towards the client to pass
// through the worker, which is the case for kinds websocket and echo only.
absl::Status ValidateRouteLimits(const Route& route, const std::string& field) {
  if (auto s = ValidateLimits(route.limits(), field); !s.ok()) return s;
  if (route.limits().slow_consumer_policy() ==
          wsgate::v1::Limits::SLOW_CONSUMER_POLICY_DROP_OLDEST &&
      route.kind_case() != Route::kWebsocket && route.kind_case() != Route::kEcho) {
    return Invalid(field + ".slow_consumer_policy",
                   "SLOW_CONSUMER_POLICY_DROP_OLDEST is enforced for kinds websocket and echo "
                   "only (this kind hands its messages to the connection itself); use "
                   "SLOW_CONSUMER_POLICY_CLOSE");
  }
  return absl::OkStatus();
}

dataplane::RouteLimits ToRouteLimits(const Route& r, const dataplane::PathTemplate& path,
                                     const wsgate::v1::Limits& e) {
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
    case Route::kRoom:
      l.client_id_param =
          r.room().client_id_param().empty() ? "client_id" : r.room().client_id_param();
      break;
    case Route::kPubsub:
      l.client_id_param =
          r.pubsub().session_param().empty() ? "session_id" : r.pubsub().session_param();
      break;
    case Route::kExternalClient:
      l.client_id_param = r.external_client().client_id_param().empty()
                              ? "client_id"
                              : r.external_client().client_id_param();
      break;
    default:
      // Other kinds have no client id of their own: a `{client_id}` path parameter is one.
      for (const auto& seg : path.segments()) {
        if (seg.is_param && seg.text == "client_id") l.client_id_param = seg.text;
      }
      break;
  }
  return l;
}

}  // namespace

wsgate::v1::Limits EffectiveLimits(const Route& route, const wsgate::v1::Limits& defaults) {
  wsgate::v1::Limits e = defaults;
  // proto3 MergeFrom copies exactly the scalar fields that are non-zero: "0 inherits".
  e.MergeFrom(route.limits());
  if (e.max_message_bytes() == 0) {
    // The seed's message size limit (1 MiB) on external_client unless a level sets its own.
    e.set_max_message_bytes(route.kind_case() == Route::kExternalClient
                                ? 1ull << 20
                                : dataplane::RouteLimits::kDefaultMaxMessageBytes);
  }
  if (e.messages_per_second() > 0 && e.message_burst() == 0) {
    e.set_message_burst(dataplane::DefaultMessageBurst(e.messages_per_second()));
  }
  if (e.rate_policy() == wsgate::v1::Limits::RATE_POLICY_UNSPECIFIED) {
    e.set_rate_policy(wsgate::v1::Limits::RATE_POLICY_DROP);
  }
  // DROP_OLDEST needs the worker to hand the messages to the client itself (websocket, echo);
  // the other kinds inherit it from the defaults as CLOSE (TranslateRoute refuses it on them).
  const bool worker_sends =
      route.kind_case() == Route::kWebsocket || route.kind_case() == Route::kEcho;
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

absl::StatusOr<TranslatedRoute> TranslateRoute(const Route& route, std::string_view field_in,
                                               const wsgate::v1::Limits& defaults,
                                               UnreadableFiles files) {
  const std::string field(field_in);
  auto rc = std::make_shared<RouteConfig>();
  if (route.name().empty()) return Invalid(field + ".name", "required");
  if (!ValidName(route.name())) {
    return Invalid(field + ".name",
                   absl::StrCat("'", route.name(),
                                "' is not valid (lowercase letters, digits, '.', '_', '-'; starts "
                                "with a letter or digit; at most 63 characters)"));
  }
  rc->name = route.name();
  if (route.path().empty()) return Invalid(field + ".path", "required");
  auto path = dataplane::PathTemplate::Parse(route.path());
  if (!path.ok()) {
    return Invalid(field + ".path",
                   absl::StrCat("'", route.path(), "': ", path.status().message()));
  }
  rc->path = route.path();
  // `version` is output-only: whatever a client sends is ignored (the store overwrites it).
  rc->version = route.version();
  absl::Status kind_status;
  switch (route.kind_case()) {
    case Route::KIND_NOT_SET:
      return Invalid(field + ".kind",
                     "one of websocket, echo, http_bridge, external_client, room, pubsub must be "
                     "set");
    case Route::kWebsocket:
      rc->kind = RouteKind::kWebSocket;
      kind_status = TranslateWebSocket(route, field + ".websocket", files, &rc->websocket);
      break;
    case Route::kEcho:
      rc->kind = RouteKind::kEcho;
      break;
    case Route::kHttpBridge:
      rc->kind = RouteKind::kHttpBridge;
      kind_status = TranslateHttpBridge(route, field + ".http_bridge", files, rc.get());
      break;
    case Route::kExternalClient:
      rc->kind = RouteKind::kExternalClient;
      kind_status = TranslateExternalClient(route, field + ".external_client", files, rc.get());
      break;
    case Route::kRoom:
      rc->kind = RouteKind::kRoom;
      kind_status = TranslateRoom(route, field + ".room", rc.get());
      break;
    case Route::kPubsub:
      rc->kind = RouteKind::kPubSub;
      kind_status = TranslatePubSub(route, field + ".pubsub", files, rc.get());
      break;
  }
  if (!kind_status.ok()) return kind_status;
  if (auto s = ValidateRouteLimits(route, field + ".limits"); !s.ok()) return s;
  rc->limits = ToRouteLimits(route, *path, EffectiveLimits(route, defaults));
  return TranslatedRoute{std::move(rc), path->Shape()};
}

}  // namespace wsgate::controlplane
