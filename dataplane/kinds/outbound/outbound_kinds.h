// The route kinds whose connections the gateway opens because a client asked:
// `http_bridge` (seeds 000/001) and `external_client` (seed 003), behind the small interface the
// worker needs to drive them. The worker decides the plan from the route kind, creates one
// KindSession per client connection with OutboundKinds::Create, and forwards the client leg's
// open / message / termination events to it; everything else (HTTP requests, outbound WebSocket
// legs, allow-lists, limits) lives here.
//
// Threading: OutboundKinds, every KindSession and every callback here belong to one worker
// thread (the one that runs the worker's io_context). Only ExternalClientRegistry is shared by
// the workers, and it is thread-safe; it is touched on connect / disconnect events and REST
// queries, never per message.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/kind_session.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/sessions/session_info.h"
#include "dataplane/stats/route_stats.h"
#include "dataplane/transport/tls_client_config.h"
#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::outbound {
class HttpClient;
}  // namespace wsgate::dataplane::outbound

namespace wsgate::dataplane::transport {

// Who is connected to the external_client routes, across all workers: the per-client_id cap and
// GET /api/websocket/active-connections. Thread-safe (one mutex, taken on connect and disconnect
// events and REST queries only).
class ExternalClientRegistry {
 public:
  void AddClient(const std::string& client_id);
  void RemoveClient(const std::string& client_id);
  // Counts one more external connection of (route, client_id) unless it already has `max`.
  bool TryAddExternal(const std::string& route, const std::string& client_id, uint32_t max);
  void RemoveExternal(const std::string& route, const std::string& client_id);

  struct Listing {
    std::vector<std::string> active_connections;    // client ids, sorted, unique
    std::vector<std::string> external_connections;  // client ids with an open external leg
  };
  Listing List() const;

  // POST /api/websocket/test-connection makes the gateway open a connection of the caller's
  // choosing, so each client address may run at most kTestsPerMinute of them in any 60 s,
  // whichever worker answers. True when one more may run now (and counts it).
  static constexpr uint32_t kTestsPerMinute = 10;
  bool AllowTest(const std::string& address, std::chrono::steady_clock::time_point now);

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> clients_;                                // client_id -> connections
  std::map<std::pair<std::string, std::string>, uint32_t> external_;  // (route, id) -> count
  // Client address -> start times of its tests in the last minute (sliding window).
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> tests_;
  uint64_t tests_seen_ = 0;  // every so often, addresses quiet for a minute are forgotten
};

// Per-worker state of the outbound kinds: the worker's HTTP client (created on first use) and
// access to its websocketpp client endpoint. Owned by the worker, used only on its thread.
class OutboundKinds {
 public:
  // `debug_events`: log every event of these kinds (DataPlaneOptions::debug_events).
  OutboundKinds(boost::asio::io_context& ioc, ClientEndpoint& ws_client, int worker_index,
                std::shared_ptr<ExternalClientRegistry> registry, bool debug_events);
  ~OutboundKinds();
  OutboundKinds(const OutboundKinds&) = delete;
  OutboundKinds& operator=(const OutboundKinds&) = delete;

  // For a route of kind kHttpBridge or kExternalClient; nullptr for any other kind.
  std::shared_ptr<KindSession> Create(
      std::shared_ptr<const RouteConfig> route,
      const std::vector<std::pair<std::string, std::string>>& params, ServerConnectionPtr client,
      RouteWorkerCounters* counters, std::shared_ptr<sessions::SessionTraffic> traffic = nullptr);

  // The seed's REST endpoints on the data port: GET /api/websocket/active-connections and
  // POST /api/websocket/test-connection (answered later, through websocketpp's deferred
  // response, after an asynchronous probe). Returns false when `path` is not one of them.
  bool HandleHttp(const ServerConnectionPtr& con, std::string_view path,
                  const SnapshotPtr& snapshot);

  boost::asio::io_context& ioc() { return ioc_; }
  ClientEndpoint& ws_client() { return ws_client_; }
  // For wss:// external legs; created on first use (TLS contexts come from each route).
  TlsClientEndpoint& tls_ws_client();
  // The TLS context and the host name to verify (when the context verifies peers) for the next
  // connection made on tls_ws_client(): websocketpp asks the endpoint for them while
  // get_connection builds the TLS stream. Call right before get_connection.
  void PrepareTls(std::shared_ptr<boost::asio::ssl::context> ctx, std::string host);
  outbound::HttpClient& http();
  ExternalClientRegistry& registry() { return *registry_; }
  int worker_index() const { return worker_index_; }
  // Seed 003's WEBSOCKET_DEBUG=true (read by the control plane's settings): log every event of
  // these kinds.
  bool debug_events() const { return debug_events_; }

 private:
  boost::asio::io_context& ioc_;
  ClientEndpoint& ws_client_;
  const int worker_index_;
  std::shared_ptr<ExternalClientRegistry> registry_;
  const bool debug_events_;
  std::unique_ptr<outbound::HttpClient> http_;
  std::unique_ptr<TlsClientEndpoint> tls_ws_client_;
  std::shared_ptr<boost::asio::ssl::context> next_tls_context_;
  std::string next_tls_host_;
};

}  // namespace wsgate::dataplane::transport
