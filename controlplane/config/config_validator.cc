#include "controlplane/config/config_validator.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/config/url.h"
#include "dataplane/data_plane.h"
#include "dataplane/auth/jwt_hs256.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/routing/path_template.h"

namespace wsgate::controlplane {
namespace {

using wsgate::v1::Route;

constexpr uint32_t kMaxConnectTimeoutMs = 300000;
constexpr uint64_t kMaxMessageBytes = 256ull << 20;
constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxWorkers = 64;

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

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool ValidHeaderName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), IsTokenChar);
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
  if (!ValidHeaderName(name)) {
    return Invalid(field, absl::StrCat("'", name, "' is not a valid header name"));
  }
  if (IsReservedHeader(name)) {
    return Invalid(field, absl::StrCat("header '", name,
                                       "' is managed by the proxy (hop-by-hop or WebSocket "
                                       "handshake) and cannot be forwarded or set"));
  }
  return absl::OkStatus();
}

absl::Status ValidateWebSocket(const wsgate::v1::WebSocketRoute& ws, const std::string& field) {
  if (ws.upstreams_size() == 0) {
    return Invalid(field + ".upstreams", "at least one upstream ws:// URL is required");
  }
  for (int i = 0; i < ws.upstreams_size(); ++i) {
    auto url = ParseWsUrl(ws.upstreams(i));
    if (!url.ok()) {
      return Invalid(absl::StrCat(field, ".upstreams[", i, "]"), url.status().message());
    }
  }
  if (ws.connect_timeout_ms() > kMaxConnectTimeoutMs) {
    return Invalid(field + ".connect_timeout_ms",
                   absl::StrCat("must be 0 (default 5000) or 1..", kMaxConnectTimeoutMs, ", got ",
                                ws.connect_timeout_ms()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < ws.forward_headers_size(); ++i) {
    const std::string f = absl::StrCat(field, ".forward_headers[", i, "]");
    if (auto s = ValidateHeaderName(f, ws.forward_headers(i)); !s.ok()) return s;
    if (!seen.insert(absl::AsciiStrToLower(ws.forward_headers(i))).second) {
      return Invalid(f, absl::StrCat("header '", ws.forward_headers(i), "' is listed twice"));
    }
  }
  // Proto maps have no order; check in name order so the first error is always the same one.
  std::map<std::string, std::string> set_headers(ws.set_headers().begin(), ws.set_headers().end());
  std::set<std::string> seen_set;
  for (const auto& [name, value] : set_headers) {
    const std::string f = absl::StrCat(field, ".set_headers[\"", name, "\"]");
    if (auto s = ValidateHeaderName(f, name); !s.ok()) return s;
    if (!seen_set.insert(absl::AsciiStrToLower(name)).second) {
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
  }
  return absl::OkStatus();
}

constexpr uint32_t kMaxInFlight = 1024;
constexpr uint32_t kMaxRequestTimeoutMs = 600000;
constexpr uint32_t kMaxRedirects = 20;
constexpr uint64_t kMaxBodyBytes = 256ull << 20;
constexpr uint32_t kMaxExternalPerClient = 1000;
constexpr uint32_t kMaxMessagesPerMinute = 1000000;

// Allow-list, address ranges and TLS: what http_bridge and external_client share.
template <typename KindProto>
absl::Status ValidateOutbound(const KindProto& kind, const std::string& field,
                              const std::set<std::string>& schemes) {
  if (kind.allowed_targets_size() == 0) {
    return Invalid(field + ".allowed_targets",
                   "at least one target is required (e.g. \"https://api.example.com/v1\")");
  }
  for (int i = 0; i < kind.allowed_targets_size(); ++i) {
    const std::string f = absl::StrCat(field, ".allowed_targets[", i, "]");
    auto rule = dataplane::outbound::ParseTargetRule(kind.allowed_targets(i));
    if (!rule.ok()) return Invalid(f, rule.status().message());
    if (schemes.count(rule->scheme) == 0) {
      return Invalid(f, absl::StrCat("scheme '", rule->scheme, "' cannot be used by this kind (",
                                     absl::StrJoin(schemes, ", "), ")"));
    }
  }
  std::set<std::string> seen;
  for (int i = 0; i < kind.allowed_address_ranges_size(); ++i) {
    const std::string f = absl::StrCat(field, ".allowed_address_ranges[", i, "]");
    if (auto r = dataplane::outbound::ParseAddressRange(kind.allowed_address_ranges(i)); !r.ok()) {
      return Invalid(f, r.status().message());
    }
    if (!seen.insert(kind.allowed_address_ranges(i)).second) {
      return Invalid(f, absl::StrCat("'", kind.allowed_address_ranges(i), "' is listed twice"));
    }
  }
  const auto& tls = kind.tls();
  if (tls.verify() == wsgate::v1::OutboundTls::VERIFY_CA_FILE) {
    if (tls.ca_file().empty()) {
      return Invalid(field + ".tls.ca_file", "required when verify is VERIFY_CA_FILE");
    }
    // Read now: a missing or unparsable file refuses the route here instead of every https
    // connection on it failing later.
    dataplane::outbound::TlsSettings settings;
    settings.verify = dataplane::outbound::TlsSettings::Verify::kCaFile;
    settings.ca_file = tls.ca_file();
    if (auto ctx = dataplane::outbound::MakeTlsContext(settings); !ctx.ok()) {
      return Invalid(field + ".tls.ca_file",
                     absl::StrCat("'", tls.ca_file(), "': ", ctx.status().message()));
    }
  } else if (!tls.ca_file().empty()) {
    return Invalid(field + ".tls.ca_file", "only meaningful with verify: VERIFY_CA_FILE");
  }
  return absl::OkStatus();
}

absl::Status ValidateHttpBridge(const wsgate::v1::HttpBridgeRoute& hb, const std::string& field) {
  if (auto s = ValidateOutbound(hb, field, {"http", "https"}); !s.ok()) return s;
  if (hb.max_in_flight() > kMaxInFlight) {
    return Invalid(field + ".max_in_flight",
                   absl::StrCat("must be 0 (default 16) or 1..", kMaxInFlight, ", got ",
                                hb.max_in_flight()));
  }
  if (hb.request_timeout_ms() > kMaxRequestTimeoutMs) {
    return Invalid(field + ".request_timeout_ms",
                   absl::StrCat("must be 0 (default 30000) or 1..", kMaxRequestTimeoutMs,
                                ", got ", hb.request_timeout_ms()));
  }
  if (hb.max_redirects() > kMaxRedirects) {
    return Invalid(field + ".max_redirects", absl::StrCat("must be 0 (default 5) or 1..",
                                                          kMaxRedirects, ", got ",
                                                          hb.max_redirects()));
  }
  if (hb.max_redirects() != 0 && !hb.follow_redirects()) {
    return Invalid(field + ".max_redirects", "only meaningful with follow_redirects: true");
  }
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
  return absl::OkStatus();
}

absl::Status ValidateExternalClient(const wsgate::v1::ExternalClientRoute& ec,
                                    const std::string& field, const std::string& path) {
  if (auto s = ValidateOutbound(ec, field, {"ws", "wss"}); !s.ok()) return s;
  if (ec.max_connections_per_client() > kMaxExternalPerClient) {
    return Invalid(field + ".max_connections_per_client",
                   absl::StrCat("must be 0 (default 10) or 1..", kMaxExternalPerClient, ", got ",
                                ec.max_connections_per_client()));
  }
  if (ec.connect_timeout_ms() > kMaxConnectTimeoutMs) {
    return Invalid(field + ".connect_timeout_ms",
                   absl::StrCat("must be 0 (default 30000) or 1..", kMaxConnectTimeoutMs,
                                ", got ", ec.connect_timeout_ms()));
  }
  if (ec.messages_per_minute() > kMaxMessagesPerMinute) {
    return Invalid(field + ".messages_per_minute",
                   absl::StrCat("must be 0 (default 100) or 1..", kMaxMessagesPerMinute,
                                ", got ", ec.messages_per_minute()));
  }
  const std::string param = ec.client_id_param().empty() ? "client_id" : ec.client_id_param();
  if (path.find(absl::StrCat("{", param, "}")) == std::string::npos) {
    return Invalid(ec.client_id_param().empty() ? field : field + ".client_id_param",
                   absl::StrCat("the path '", path, "' has no {", param,
                                "} parameter to name the client"));
  }
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

absl::Status ValidateRoom(const wsgate::v1::RoomRoute& room, const std::string& field,
                          const std::string& path) {
  const std::string client = room.client_id_param().empty() ? "client_id" : room.client_id_param();
  if (!PathHasParam(path, client)) {
    return Invalid(room.client_id_param().empty() ? field : field + ".client_id_param",
                   absl::StrCat("the path '", path, "' has no {", client,
                                "} parameter to name the client"));
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
  return absl::OkStatus();
}

absl::Status ValidatePubSub(const wsgate::v1::PubSubRoute& ps, const std::string& field,
                            const std::string& path) {
  const std::string session = ps.session_param().empty() ? "session_id" : ps.session_param();
  if (!PathHasParam(path, session)) {
    return Invalid(ps.session_param().empty() ? field : field + ".session_param",
                   absl::StrCat("the path '", path, "' has no {", session,
                                "} parameter to name the session"));
  }
  if (auto s = ValidateChannelTemplate(ps.down_channel(), field + ".down_channel", path); !s.ok()) {
    return s;
  }
  if (auto s = ValidateChannelTemplate(ps.up_channel(), field + ".up_channel", path); !s.ok()) {
    return s;
  }
  if (ps.disable_up() && !ps.up_channel().empty()) {
    return Invalid(field + ".up_channel", "meaningless with disable_up: true");
  }
  if (ps.subscribe_timeout_ms() > kMaxSubscribeTimeoutMs) {
    return Invalid(field + ".subscribe_timeout_ms",
                   absl::StrCat("must be 0 (default 5000) or 1..", kMaxSubscribeTimeoutMs,
                                ", got ", ps.subscribe_timeout_ms()));
  }
  if (auto s = ValidateChannelTemplate(ps.auth_key(), field + ".auth_key", path); !s.ok()) {
    return s;
  }
  if (!ps.auth_key().empty() && ps.auth() != wsgate::v1::PubSubRoute::AUTH_REDIS_TOKEN) {
    return Invalid(field + ".auth_key", "only meaningful with auth: AUTH_REDIS_TOKEN");
  }
  if (ps.auth() == wsgate::v1::PubSubRoute::AUTH_JWT_HS256) {
    // Read now, so that an unreadable or empty secret refuses the config instead of a route
    // that answers 503 to everyone.
    std::string secret;
    std::string error;
    if (!dataplane::auth::LoadJwtSecret(ps.jwt_secret_file(), ps.jwt_secret_env(), &secret,
                                        &error)) {
      const char* name = !ps.jwt_secret_env().empty() && ps.jwt_secret_file().empty()
                             ? ".jwt_secret_env"
                             : ".jwt_secret_file";
      return Invalid(field + name, error);
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
  if (!ps.token_query_param().empty()) {
    for (char c : ps.token_query_param()) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
        return Invalid(field + ".token_query_param",
                       absl::StrCat("'", ps.token_query_param(),
                                    "': letters, digits, '_', '-' and '.' only"));
      }
    }
  }
  if (ps.max_queued_bytes() > kMaxQueuedBytes) {
    return Invalid(field + ".max_queued_bytes",
                   absl::StrCat("must be 0 (default 10485760) or 1..", kMaxQueuedBytes, ", got ",
                                ps.max_queued_bytes()));
  }
  return absl::OkStatus();
}

constexpr uint64_t kMaxSendQueueBytes = 1ull << 30;
constexpr double kMaxRate = 1e6;
constexpr uint32_t kMinPingIntervalMs = 100;

absl::Status ValidateRate(double v, const std::string& field) {
  if (!std::isfinite(v) || v < 0) {
    return Invalid(field, absl::StrCat("must be >= 0 (0: unlimited), got ", v));
  }
  if (v > kMaxRate) return Invalid(field, absl::StrCat("must be at most ", kMaxRate, ", got ", v));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLimits(const wsgate::v1::Limits& limits, std::string_view field_in) {
  const std::string field(field_in);
  using L = wsgate::v1::Limits;
  if (limits.max_message_bytes() > kMaxMessageBytes) {
    return Invalid(field + ".max_message_bytes",
                   absl::StrCat("must be 0 (default 16777216) or 1..", kMaxMessageBytes, ", got ",
                                limits.max_message_bytes()));
  }
  if (auto s = ValidateRate(limits.messages_per_second(), field + ".messages_per_second");
      !s.ok()) {
    return s;
  }
  if (limits.message_burst() != 0 && limits.messages_per_second() == 0) {
    return Invalid(field + ".message_burst",
                   "needs " + field + ".messages_per_second (a burst of an unlimited rate)");
  }
  if (!L::RatePolicy_IsValid(limits.rate_policy())) {
    return Invalid(field + ".rate_policy",
                   absl::StrCat("unknown value ", limits.rate_policy(),
                                " (RATE_POLICY_DROP or RATE_POLICY_CLOSE)"));
  }
  if (limits.rate_policy() != L::RATE_POLICY_UNSPECIFIED && limits.messages_per_second() == 0) {
    return Invalid(field + ".rate_policy", "needs " + field + ".messages_per_second");
  }
  if (auto s = ValidateRate(limits.handshakes_per_second(), field + ".handshakes_per_second");
      !s.ok()) {
    return s;
  }
  if (limits.send_queue_bytes() > kMaxSendQueueBytes) {
    return Invalid(field + ".send_queue_bytes",
                   absl::StrCat("must be 0 (built-in backpressure) or 1..", kMaxSendQueueBytes,
                                ", got ", limits.send_queue_bytes()));
  }
  if (!L::SlowConsumerPolicy_IsValid(limits.slow_consumer_policy())) {
    return Invalid(
        field + ".slow_consumer_policy",
        absl::StrCat("unknown value ", limits.slow_consumer_policy(),
                     " (SLOW_CONSUMER_POLICY_CLOSE or SLOW_CONSUMER_POLICY_DROP_OLDEST)"));
  }
  if (limits.slow_consumer_policy() != L::SLOW_CONSUMER_POLICY_UNSPECIFIED &&
      limits.send_queue_bytes() == 0) {
    return Invalid(field + ".slow_consumer_policy", "needs " + field + ".send_queue_bytes");
  }
  if (limits.ping_interval_ms() != 0 && limits.ping_interval_ms() < kMinPingIntervalMs) {
    return Invalid(field + ".ping_interval_ms",
                   absl::StrCat("must be 0 (no pings) or at least ", kMinPingIntervalMs, ", got ",
                                limits.ping_interval_ms()));
  }
  if (limits.ping_timeout_ms() != 0 && limits.ping_interval_ms() == 0) {
    return Invalid(field + ".ping_timeout_ms", "needs " + field + ".ping_interval_ms");
  }
  return absl::OkStatus();
}

namespace {

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

}  // namespace

absl::Status ValidateRoute(const Route& route, std::string_view field_in) {
  const std::string field(field_in);
  if (route.name().empty()) return Invalid(field + ".name", "required");
  if (!ValidName(route.name())) {
    return Invalid(field + ".name",
                   absl::StrCat("'", route.name(),
                                "' is not valid (lowercase letters, digits, '.', '_', '-'; starts "
                                "with a letter or digit; at most 63 characters)"));
  }
  if (route.path().empty()) return Invalid(field + ".path", "required");
  if (auto t = dataplane::PathTemplate::Parse(route.path()); !t.ok()) {
    return Invalid(field + ".path", absl::StrCat("'", route.path(), "': ", t.status().message()));
  }
  // `version` is output-only: whatever a client sends is ignored (the store overwrites it).
  switch (route.kind_case()) {
    case Route::KIND_NOT_SET:
      return Invalid(field + ".kind",
                     "one of websocket, echo, http_bridge, external_client, room, pubsub must be "
                     "set");
    case Route::kWebsocket:
      if (auto s = ValidateWebSocket(route.websocket(), field + ".websocket"); !s.ok()) return s;
      break;
    case Route::kEcho:
      break;
    case Route::kHttpBridge:
      if (auto s = ValidateHttpBridge(route.http_bridge(), field + ".http_bridge"); !s.ok()) {
        return s;
      }
      break;
    case Route::kExternalClient:
      if (auto s = ValidateExternalClient(route.external_client(), field + ".external_client",
                                          route.path());
          !s.ok()) {
        return s;
      }
      break;
    case Route::kRoom:
      if (auto s = ValidateRoom(route.room(), field + ".room", route.path()); !s.ok()) return s;
      break;
    case Route::kPubsub:
      if (auto s = ValidatePubSub(route.pubsub(), field + ".pubsub", route.path()); !s.ok()) {
        return s;
      }
      break;
  }
  return ValidateRouteLimits(route, field + ".limits");
}

absl::Status ValidateConfig(const wsgate::v1::Config& config) {
  const auto& server = config.server();
  const std::pair<const char*, uint32_t> ports[] = {{"port", server.port()},
                                                    {"admin_port", server.admin_port()},
                                                    {"grpc_port", server.grpc_port()}};
  for (const auto& [name, value] : ports) {
    if (value > kMaxPort) {
      return Invalid(absl::StrCat("server.", name),
                     absl::StrCat("must be at most ", kMaxPort, ", got ", value));
    }
  }
  // The same checks the data plane makes when it starts, so that a file --check-config accepts
  // also starts (and the error names the field, not the REDIS_URL that would override it).
  if (!server.listen_address().empty()) {
    if (auto s = dataplane::CheckListenAddress(server.listen_address()); !s.ok()) {
      return Invalid("server.listen_address", s.message());
    }
  }
  if (!server.redis_url().empty()) {
    if (auto s = dataplane::CheckRedisUrl(server.redis_url()); !s.ok()) {
      return Invalid("server.redis_url", s.message());
    }
  }
  if (server.workers() > kMaxWorkers) {
    return Invalid("server.workers", absl::StrCat("must be 0 (one per core) or 1..", kMaxWorkers,
                                                  ", got ", server.workers()));
  }
  if (auto s = ValidateLimits(config.default_limits(), "default_limits"); !s.ok()) return s;
  std::map<std::string, int> names;   // name -> index
  std::map<std::string, int> shapes;  // path shape -> index
  for (int i = 0; i < config.routes_size(); ++i) {
    const Route& r = config.routes(i);
    const std::string field = absl::StrCat("routes[", i, "]");
    if (auto s = ValidateRoute(r, field); !s.ok()) return s;
    if (auto [it, inserted] = names.emplace(r.name(), i); !inserted) {
      return Invalid(
          field + ".name",
          absl::StrCat("route name '", r.name(), "' is already used by routes[", it->second, "]"));
    }
    const std::string shape = dataplane::PathTemplate::Parse(r.path())->Shape();
    if (auto [it, inserted] = shapes.emplace(shape, i); !inserted) {
      const Route& other = config.routes(it->second);
      return Invalid(field + ".path", absl::StrCat("route '", r.name(), "' path '", r.path(),
                                                   "' overlaps route '", other.name(), "' path '",
                                                   other.path(), "' (same shape '", shape, "')"));
    }
  }
  return absl::OkStatus();
}

}  // namespace wsgate::controlplane
