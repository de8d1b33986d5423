// Kind `http_bridge` (seeds 000/001): every client text message is an HTTP request
// ({"url", "method", "data", "headers", "id", "timeout_ms"}) that the worker's HttpClient
// performs; the answer ({"status_code", "headers", "content"} or {"error", "code"}, with the
// request's "id") goes back on the same connection, possibly out of order. Errors are answers:
// the connection stays open.
//
// Threading: owned by one worker's session and used only on that worker's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "dataplane/kinds/outbound/outbound_kinds.h"

namespace wsgate::dataplane::transport {

class HttpBridgeSession : public KindSession,
                          public std::enable_shared_from_this<HttpBridgeSession> {
 public:
  HttpBridgeSession(OutboundKinds& kinds, std::shared_ptr<const RouteConfig> route,
                    std::unique_ptr<ClientLink> link, RouteWorkerCounters* counters);
  ~HttpBridgeSession() override;

  void OnOpen() override {}
  void OnMessage(const MessagePtr& msg) override;
  void OnTerminated() override;

 private:
  struct InFlight {
    uint64_t client_request_id = 0;  // HttpClient's id, for Cancel
    int method = 0;
    std::chrono::steady_clock::time_point started;
  };
  void Answer(const std::string& text);
  void CountRequest(int method, int outcome, std::chrono::steady_clock::time_point started);

  OutboundKinds& kinds_;
  const std::shared_ptr<const RouteConfig> route_;
  const std::unique_ptr<ClientLink> link_;
  RouteWorkerCounters* const counters_;
  bool terminated_ = false;
  uint64_t next_local_id_ = 1;
  // Local id -> request in flight (at most route.http_bridge.max_in_flight).
  std::unordered_map<uint64_t, InFlight> in_flight_;
};

}  // namespace wsgate::dataplane::transport
