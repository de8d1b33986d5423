// Kind `external_client` (seed 003): the client drives one outbound WebSocket of its own
// choosing with connect_external / send_message / disconnect_external and receives the seed's
// typed events. The target is checked against the route's allow-list before anything is
// attempted and the address actually connected to is checked again before the handshake is
// sent. Seed limits (route defaults): 10 external connections per client_id across the
// gateway, 30 s connect timeout, 1 MiB messages, 100 client messages per minute (one more
// closes the client with 1008).
//
// Threading: owned by one worker's session and used only on that worker's thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/protocol/external_client_codec.h"
#include "dataplane/transport/outbound_kinds.h"

namespace wsgate::dataplane::outbound {
struct OutboundRouteSettings;
}

namespace wsgate::dataplane::transport {

// One outbound WebSocket connection attempt under a route's allow-list and connect timeout.
// `done` is called exactly once, on the worker thread and never from inside Start, unless
// Cancel() is called first. Used by the external_client sessions and by the
// test-connection REST endpoint.
class ExternalConnector : public std::enable_shared_from_this<ExternalConnector> {
 public:
  struct Result {
    bool ok = false;
    int code = 0;  // protocol::ExternalErrorCode when !ok
    std::string message;
    std::optional<int> refusal;  // outbound::RefusalReason when the allow-list refused
    ClientConnectionPtr con;     // the open connection when ok
  };
  using Done = std::function<void(Result)>;
  // Called on the connection before it connects: set message and close handlers there.
  using Configure = std::function<void(ClientEndpoint::connection_type&)>;

  static std::shared_ptr<ExternalConnector> Start(
      OutboundKinds& kinds, std::shared_ptr<const outbound::OutboundRouteSettings> settings,
      const std::string& url, const std::vector<std::string>& protocols,
      const std::vector<std::pair<std::string, std::string>>& headers,
      std::chrono::milliseconds timeout, uint64_t max_message_bytes, const Configure& configure,
      Done done);
  // Aborts the attempt (no callback); the connection, if any, is terminated.
  void Cancel();

  explicit ExternalConnector(OutboundKinds& kinds);

 private:
  void Finish(Result result);
  void OnOpen();
  void OnFail();
  void OnTimeout();

  OutboundKinds& kinds_;
  std::shared_ptr<const outbound::OutboundRouteSettings> settings_;
  boost::asio::steady_timer timer_;
  ClientConnectionPtr con_;
  Done done_;
  // Keeps the attempt alive until it finishes or is cancelled, whoever else holds it.
  std::shared_ptr<ExternalConnector> self_;
  bool finished_ = false;
  bool timed_out_ = false;
  std::optional<int> refused_address_;  // set by the post-connect address check
  std::string refused_address_text_;
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
  ClientConnectionPtr external_;
  // Arrival times of the last messages_per_minute client messages (sliding window).
  std::deque<std::chrono::steady_clock::time_point> recent_;
  std::deque<protocol::SendExternalMessage> pending_sends_;
};

}  // namespace wsgate::dataplane::transport
