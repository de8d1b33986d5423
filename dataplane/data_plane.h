// The data plane's narrow interface to the rest of the process. Everything the control plane,
// the admin server and main() may do to the data plane goes through this class; nothing here
// mentions websocketpp, Asio or protobuf, so the split into separate processes later is a
// transport change, not a rewrite.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/health_state.h"
#include "dataplane/bus/message_bus.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/sessions/session_events.h"
#include "dataplane/sessions/session_info.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::dataplane {

struct DataPlaneOptions {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 8080;  // 0: pick a free port (see DataPlane::port())
  int workers = 1;       // >= 1; every worker listens on `port` with SO_REUSEPORT
  // Message bus of the room and pubsub kinds: empty = in-memory (this process only), else a
  // redis:// URL (Redis Pub/Sub across processes). A malformed URL fails Start.
  std::string redis_url;
  // Open client connections the whole process accepts; over it a new connection gets 503 before
  // its head is read. 0: from the descriptor limit (limits/connection_cap.h), leaving room for
  // upstream legs, Redis and the admin and gRPC ports.
  int64_t max_connections = 0;
  // Liveness of pubsub connections on routes whose limits set no ping_interval_ms: a ping every
  // `pubsub_ping_interval`, a 1001 close without a pong within `pubsub_ping_timeout`; 0
  // disables either. The control plane fills them from seed 004's WS_PING_INTERVAL_SECS and
  // WS_PING_TIMEOUT_SECS (the data plane reads no environment).
  std::chrono::milliseconds pubsub_ping_interval{30000};
  std::chrono::milliseconds pubsub_ping_timeout{10000};
  // Log every event of the http_bridge and external_client kinds at info level (seed 003's
  // WEBSOCKET_DEBUG=true).
  bool debug_events = false;
};

// The checks DataPlane::Start makes of a listen address and a bus URL, without starting
// anything, so that a configuration can be refused before start (`--check-config`). The messages
// name no field: the caller knows where the value came from (a flag, a variable, a config field).
absl::Status CheckListenAddress(const std::string& address);  // an IP literal, as Start binds it
absl::Status CheckRedisUrl(const std::string& url);           // non-empty: redis://...

class DataPlane {
 public:
  virtual ~DataPlane() = default;

  // Binds the listeners and starts the worker threads. `stats` and `health` must outlive the
  // data plane. Errors: the port cannot be bound, invalid options.
  static absl::StatusOr<std::unique_ptr<DataPlane>> Start(const DataPlaneOptions& options,
                                                          SnapshotPtr initial,
                                                          StatsRegistry* stats,
                                                          common::HealthState* health);

  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  virtual int workers() const = 0;

  // Thread-safe, non-blocking: posts the snapshot to every worker. New connections use it from
  // the next event on; open connections keep the route they started with.
  virtual void ApplySnapshot(SnapshotPtr snapshot) = 0;
  // The version every worker has applied (the minimum over workers).
  virtual uint64_t applied_version() const = 0;

  // The message bus of the room and pubsub kinds (thread-safe: Publish, up, stats), for the
  // metrics and for publishing from the control plane. Null for data planes without one.
  virtual bus::MessageBus* message_bus() { return nullptr; }
  // Counts of the room and pubsub kinds in this process, by route. Thread-safe.
  struct FanoutCounts {
    std::map<std::string, int64_t> room_members;          // wsgate_room_members
    std::map<std::string, uint64_t> backpressure_closes;  // wsgate_backpressure_closes_total
    // (route, reason) -> wsgate_auth_failures_total
    std::map<std::pair<std::string, std::string>, uint64_t> auth_failures;
  };
  virtual FanoutCounts Fanout() const { return {}; }

  // Session registry: every routed WebSocket connection, answered from live worker
  // state. Thread-safe; each call posts to every worker and waits (on the calling thread, never
  // a worker's) until all have answered, or fails with UNAVAILABLE after a few seconds.
  virtual absl::StatusOr<sessions::SessionPage> ListSessions(const sessions::SessionQuery&) {
    return absl::UnimplementedError("this data plane has no session registry");
  }
  // NOT_FOUND when no session has that id.
  virtual absl::StatusOr<sessions::SessionInfo> GetSession(const std::string&) {
    return absl::UnimplementedError("this data plane has no session registry");
  }
  // The client gets exactly `code` (0 = 1000; else 1000 or 3000-4999) and `reason` (at most
  // 123 bytes of UTF-8); an upstream leg is closed with the same code and reason. Errors:
  // INVALID_ARGUMENT naming `code` or `reason`, NOT_FOUND, FAILED_PRECONDITION (not open).
  virtual absl::Status CloseSession(const std::string&, uint32_t, const std::string&) {
    return absl::UnimplementedError("this data plane has no session registry");
  }
  // Queued on the session's own worker, so it reaches the client in order with the rest of
  // its traffic. Errors: NOT_FOUND, FAILED_PRECONDITION (not open).
  virtual absl::Status SendToSession(const std::string&, std::string, bool) {
    return absl::UnimplementedError("this data plane has no session registry");
  }
  // Sessions by route and state (for the inventory); same gathering as ListSessions.
  virtual absl::StatusOr<std::map<std::string, sessions::RouteSessionCounts>> CountSessions() {
    return absl::UnimplementedError("this data plane has no session registry");
  }
  // Session life events; null when this data plane has none.
  virtual sessions::SessionEventHub* session_events() { return nullptr; }

  // Shutdown, in this order. Thread-safe.
  // 1. Close the listeners; connections already open keep running.
  virtual void StopAccepting() = 0;
  // 2. Close every client connection with `code`/`reason` and every upstream leg with 1001.
  virtual void CloseAll(uint16_t code, const std::string& reason) = 0;
  // 2a. (Before 2, to pace a drain.) Close about `n` more open client connections the same way.
  virtual void CloseSome(size_t /*n*/, uint16_t code, const std::string& reason) {
    CloseAll(code, reason);
  }
  // 3. Wait until every connection is gone or `deadline` passes, then stop and join the workers.
  virtual void Stop(std::chrono::steady_clock::time_point deadline) = 0;
};

}  // namespace wsgate::dataplane
