// The runtime form of a route: translated once from the proto config by the control plane and
// read (never written) by the data-plane workers. Plain C++: no protobuf on the hot path.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace wsgate::dataplane {

class RouteStats;

namespace outbound {
// Allow-list, TLS context and size caps of an outbound route (dataplane/outbound/http_client.h).
// Declared here so that the route model does not depend on Beast or OpenSSL headers.
struct OutboundRouteSettings;
}  // namespace outbound

enum class RouteKind { kWebSocket, kHttpBridge, kExternalClient, kRoom, kPubSub, kEcho };

const char* RouteKindName(RouteKind kind);

// Effective limits of a route: the route's own Limits over the gateway's default_limits over the
// built-in values below, merged by the translator (controlplane/config/snapshot_builder.cc).
// 0 means "no such limit" for every field but max_message_bytes. Enforced by the worker
// (dataplane/transport/worker.cc) and dataplane/limits/; see docs/limits.md.
struct RouteLimits {
  static constexpr uint64_t kDefaultMaxMessageBytes = 16ull << 20;
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;

  // Token bucket per connection on client messages; 0 = unlimited. The burst is filled in
  // (TokenBucket::DefaultBurst) when a rate is set without one.
  double messages_per_second = 0;
  uint32_t message_burst = 0;
  enum class RatePolicy { kDrop, kClose };
  RatePolicy rate_policy = RatePolicy::kDrop;

  // Handshake admission (shared by the workers, dataplane/limits/admission.h); 0 = no cap.
  uint32_t max_connections = 0;
  uint32_t max_connections_per_client = 0;
  uint32_t max_connections_per_address = 0;
  double handshakes_per_second = 0;
  // The path parameter that names a connection's client for max_connections_per_client: room
  // client_id_param, pubsub session_param, external_client client_id_param; other kinds use a
  // parameter named `client_id` when their path has one. Empty: no per-client cap on this route.
  std::string client_id_param;

  // Timeouts; 0 = none.
  uint32_t idle_timeout_ms = 0;
  uint32_t max_lifetime_ms = 0;

  // Bound on bytes queued towards the client; 0 = the worker's built-in backpressure only
  // (WorkerOptions::send_queue_bytes: reading the feeding leg pauses, nothing is dropped).
  uint64_t send_queue_bytes = 0;
  enum class SlowConsumer { kClose, kDropOldest };
  SlowConsumer slow_consumer = SlowConsumer::kClose;

  // Liveness pings; interval 0 = no generic pinger. Timeout filled in (= the interval) when an
  // interval is set without one.
  uint32_t ping_interval_ms = 0;
  uint32_t ping_timeout_ms = 0;

  // Whether the worker's sweep timer has anything to do for this route's connections.
  bool NeedsSweep() const {
    return idle_timeout_ms > 0 || max_lifetime_ms > 0 || ping_interval_ms > 0 ||
           send_queue_bytes > 0;
  }
};

// An upstream ws:// endpoint, parsed once at translation time.
struct UpstreamUrl {
  std::string url;   // as configured, e.g. "ws://127.0.0.1:9000/echo"
  std::string host;  // "127.0.0.1"
  bool secure = false;  // wss://
  uint16_t port = 80;   // 443 by default for wss://
  std::string path_and_query;  // "/echo"
};

struct WebSocketProxySettings {
  std::vector<UpstreamUrl> upstreams;
  // Lowercased names of client request headers copied to the upstream handshake.
  std::vector<std::string> forward_headers;
  std::vector<std::pair<std::string, std::string>> set_headers;
  std::chrono::milliseconds connect_timeout{5000};
  // wss:// upstreams: the client context (verification per the route's tls; shared, read-only;
  // null when the route's CA file could not be read after admission: wss upstreams get 502),
  // and the name for SNI and the certificate check (empty: the URL's host).
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::string server_name;
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
