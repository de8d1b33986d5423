// Kind `external_client` (seed 003): the client drives one outbound WebSocket of its own
// choosing with connect_external / send_message / disconnect_external and receives the seed's
// typed events. The target is checked against the route's allow-list before anything is
// attempted; the host is resolved here, every address is checked against the route's ranges,
// and only an address that passed is connected to (checked once more before the handshake is
// sent). Seed limits (route defaults): 10 external connections per client_id across the
// gateway, 30 s connect timeout, 1 MiB messages, 100 client messages per minute (one more
// closes the client with 1008).
//
// Threading: owned by one worker's session and used only on that worker's thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/outbound/outbound_kinds.h"
#include "dataplane/protocol/external_client_codec.h"

namespace wsgate::dataplane::outbound {
struct OutboundRouteSettings;
}

namespace wsgate::dataplane::transport {

// An open outbound WebSocket leg, ws:// or wss://.
class ExternalLeg {
 public:
  virtual ~ExternalLeg() = default;
  virtual websocketpp::lib::error_code Send(const std::string& payload, bool binary) = 0;
  // Close handshake; nothing more is delivered to the handlers afterwards.
  virtual void Close(uint16_t code, const std::string& reason) = 0;
};

// One outbound WebSocket connection attempt (ws:// on the worker's client endpoint, wss:// on
// its TLS client endpoint) under a route's allow-list and connect timeout. `done` is called
// exactly once, on the worker thread and never from inside Start, unless Cancel() is called
// first. Used by the external_client sessions and by the test-connection REST endpoint.
class ExternalConnector {
 public:
  struct Result {
    bool ok = false;
    int code = 0;  // protocol::ExternalErrorCode when !ok
    std::string message;
    std::optional<int> refusal;        // outbound::RefusalReason when the allow-list refused
    std::shared_ptr<ExternalLeg> leg;  // the open connection when ok
  };
  using Done = std::function<void(Result)>;
  // What the open leg delivers (set before connecting; called on the worker thread).
  struct Handlers {
    std::function<void(const MessagePtr&)> on_message;
    std::function<void()> on_close;
  };

  static std::shared_ptr<ExternalConnector> Start(
      OutboundKinds& kinds, std::shared_ptr<const outbound::OutboundRouteSettings> settings,
      const std::string& url, const std::vector<std::string>& protocols,
      const std::vector<std::pair<std::string, std::string>>& headers,
      std::chrono::milliseconds timeout, uint64_t max_message_bytes, Handlers handlers, Done done);
  virtual ~ExternalConnector() = default;
  // Aborts the attempt (no callback); the connection, if any, is terminated.
  virtual void Cancel() = 0;
};

class ExternalClientSession : public KindSession,
                              public std::enable_shared_from_this<ExternalClientSession> {
 public:
  ExternalClientSession(OutboundKinds& kinds, std::shared_ptr<const RouteConfig> route,
                        std::string client_id, std::unique_ptr<ClientLink> link,
                        RouteWorkerCounters* counters);
  ~ExternalClientSession() override;

  void OnOpen() override;
  void OnMessage(const MessagePtr& msg) override;
  void OnTerminated() override;

 private:
  enum class State { kIdle, kConnecting, kOpen };
  void Emit(const std::string& event);
  bool OverRate();
  void Connect(std::string url, std::vector<std::string> protocols,
               std::vector<std::pair<std::string, std::string>> headers);
  void OnConnectDone(ExternalConnector::Result result);
  // disconnect_external: drops the attempt or the open leg (and whatever send_message waits).
  void Disconnect();
  void SendNow(const protocol::SendExternalMessage& send);
  // send_message commands that arrived while connecting: the seed's server handles a client's
  // messages one after the other, so a send_message right after connect_external goes out once
  // the connection is open (or gets send_error if it fails).
  void FailPendingSends(const std::string& why);
  void OnExternalMessage(const MessagePtr& msg);
  void OnExternalClose();
  // Leaves kOpen/kConnecting: releases the per-client slot and the active gauge.
  void ReleaseExternal();

  OutboundKinds& kinds_;
  const std::shared_ptr<const RouteConfig> route_;
  const std::string client_id_;
  const std::unique_ptr<ClientLink> link_;
  RouteWorkerCounters* const counters_;
  bool opened_ = false;
  bool terminated_ = false;
  State state_ = State::kIdle;
  bool slot_held_ = false;
  std::shared_ptr<ExternalConnector> connector_;
  std::shared_ptr<ExternalLeg> external_;
  uint64_t leg_generation_ = 0;  // tells the current leg's close from an earlier one's
  // Arrival times of the last messages_per_minute client messages (sliding window).
  std::deque<std::chrono::steady_clock::time_point> recent_;
  std::deque<protocol::SendExternalMessage> pending_sends_;
};

}  // namespace wsgate::dataplane::transport
