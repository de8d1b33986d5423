// The runtime form of a route: translated once from the proto config by the control plane and
// read (never written) by the data-plane workers. Plain C++: no protobuf on the hot path.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wsgate::dataplane {

class RouteStats;

namespace outbound {
// Allow-list, TLS context and size caps of an outbound route (dataplane/outbound/http_client.h).
// Declared here so that the route model does not depend on Beast or OpenSSL headers.
struct OutboundRouteSettings;
}  // namespace outbound

enum class RouteKind { kWebSocket, kHttpBridge, kExternalClient, kRoom, kPubSub, kEcho };

const char* RouteKindName(RouteKind kind);

// Effective limits of a route: defaults already filled in by the translator.
struct RouteLimits {
  static constexpr uint64_t kDefaultMaxMessageBytes = 16ull << 20;
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;
  // Liveness pings (0: none from the limits; the pubsub kind then pings on its own, from
  // WS_PING_INTERVAL_SECS / WS_PING_TIMEOUT_SECS).
  uint32_t ping_interval_ms = 0;
  uint32_t ping_timeout_ms = 0;
};

// An upstream ws:// endpoint, parsed once at translation time.
struct UpstreamUrl {
  std::string url;   // as configured, e.g. "ws://127.0.0.1:9000/echo"
  std::string host;  // "127.0.0.1"
  uint16_t port = 80;
  std::string path_and_query;  // "/echo"
};

struct WebSocketProxySettings {
  std::vector<UpstreamUrl> upstreams;
  // Lowercased names of client request headers copied to the upstream handshake.
  std::vector<std::string> forward_headers;
  std::vector<std::pair<std::string, std::string>> set_headers;
  std::chrono::milliseconds connect_timeout{5000};
};

// Kind `http_bridge` (seeds 000/001). The allow-list and caps are in RouteConfig::outbound.
struct HttpBridgeSettings {
  uint32_t max_in_flight = 16;
  // Caps the client's timeout_ms; also the timeout when the client names none.
  std::chrono::milliseconds request_timeout{30000};
};

// Kind `external_client` (seed 003). The allow-list is in RouteConfig::outbound.
struct ExternalClientSettings {
  uint32_t max_connections_per_client = 10;
  std::chrono::milliseconds connect_timeout{30000};
  uint32_t messages_per_minute = 100;
  std::string client_id_param = "client_id";
};

// Kind `room` (seed 002). Texts are templates: {client_id} and {message} are replaced.
struct RoomSettings {
  std::string room_param;  // empty: one room for the whole route
  std::string client_id_param = "client_id";
  std::string self_template = "You wrote: {message}";
  std::string broadcast_template = "Client #{client_id} says: {message}";
  std::string leave_template = "Client #{client_id} left the chat";
  // A second connection with a client_id already in the room: false = 409 on its handshake,
  // true = the old connection is closed with 4000 and the new one takes its place.
  bool replace_duplicate = false;
  // JSON envelopes ({"type":"message"|"joined"|"left",...}) instead of the templates.
  bool json_format = false;
};

// Kind `pubsub` (seed 004). Channel templates: {name} is replaced by the path parameter `name`.
struct PubSubSettings {
  std::string down_channel = "session:{session_id}:down";
  std::string up_channel = "session:{session_id}:up";  // empty: client messages are dropped
  std::chrono::milliseconds subscribe_timeout{5000};
  // Bytes queued towards the client beyond which it is closed with 1008 "client too slow".
  uint64_t max_queued_bytes = 10ull << 20;
  enum class Auth { kNone, kRedisToken, kJwtHs256 };
  Auth auth = Auth::kNone;
  std::string auth_key = "session:{session_id}:auth";  // kRedisToken: the token's key template
  std::string session_param = "session_id";            // kJwtHs256: compared with the claim
  // kJwtHs256: the HMAC secret, read when the route was applied; empty when it could not be
  // read then (every handshake gets 503 until the route is applied again with a readable one).
  std::string jwt_secret;
  // Other places the token may come from: a query parameter (empty: no), the subprotocol pair
  // ["wsgate.bearer", "wsgate.bearer.<token>"].
  std::string token_query_param;
  bool token_subprotocol = false;
  // Client messages: text must parse as JSON (else 1003); binary refused (1003).
  bool validate_json = false;
  bool refuse_binary = false;
};

struct RouteConfig {
  std::string name;
  std::string path;  // the template as configured
  RouteKind kind = RouteKind::kEcho;
  uint64_t version = 0;
  RouteLimits limits;
  WebSocketProxySettings websocket;  // meaningful when kind == kWebSocket
  HttpBridgeSettings http_bridge;        // meaningful when kind == kHttpBridge
  ExternalClientSettings external_client;  // meaningful when kind == kExternalClient
  RoomSettings room;                       // meaningful when kind == kRoom
  PubSubSettings pubsub;                   // meaningful when kind == kPubSub
  // Allow-list, address ranges, TLS and size caps: set for kHttpBridge and kExternalClient.
  // Shared with requests in flight, which keep it alive across a route change.
  std::shared_ptr<const outbound::OutboundRouteSettings> outbound;
  // Counters of this route; owned by the StatsRegistry, outlives every snapshot.
  RouteStats* stats = nullptr;
};

}  // namespace wsgate::dataplane
