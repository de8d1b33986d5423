#include "dataplane/routing/route_config.h"

namespace wsgate::dataplane {

// The names are the proto field names of the route kinds, so logs and metrics read like the
// config file.
const char* RouteKindName(RouteKind kind) {
  switch (kind) {
    case RouteKind::kWebSocket:
      return "websocket";
    case RouteKind::kHttpBridge:
      return "http_bridge";
    case RouteKind::kExternalClient:
      return "external_client";
    case RouteKind::kRoom:
      return "room";
    case RouteKind::kPubSub:
      return "pubsub";
    case RouteKind::kEcho:
      return "echo";
  }
  return "unknown";
}

}  // namespace wsgate::dataplane
