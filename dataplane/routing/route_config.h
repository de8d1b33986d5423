// The runtime form of a route: translated once from the proto config by the control plane and
// read (never written) by the data-plane workers. Plain C++: no protobuf on the hot path.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wsgate::dataplane {

class RouteStats;

enum class RouteKind { kWebSocket, kHttpBridge, kExternalClient, kRoom, kPubSub, kEcho };

const char* RouteKindName(RouteKind kind);

// Effective limits of a route: defaults already filled in by the translator.
struct RouteLimits {
  static constexpr uint64_t kDefaultMaxMessageBytes = 16ull << 20;
  uint64_t max_message_bytes = kDefaultMaxMessageBytes;
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

struct RouteConfig {
  std::string name;
  std::string path;  // the template as configured
  RouteKind kind = RouteKind::kEcho;
  uint64_t version = 0;
  RouteLimits limits;
  WebSocketProxySettings websocket;  // meaningful when kind == kWebSocket
  // Counters of this route; owned by the StatsRegistry, outlives every snapshot.
  RouteStats* stats = nullptr;
};

}  // namespace wsgate::dataplane
