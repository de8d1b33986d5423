// Kind external_client: the session as the worker sees it (open, message, terminated), the
// per-client message rate limit, and the client's commands: parsed by
// protocol::ParseExternalCommand and dispatched to the connect (external_client_connect.cc) and
// relay (external_client_relay.cc) parts.
#include "dataplane/kinds/external_client/external_client_session.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "dataplane/kinds/external_client/external_client_internal.h"
#include "dataplane/protocol/external_client_codec.h"

namespace wsgate::dataplane::transport {

using external_client_internal::Now;
using protocol::ExternalErrorCode;

ExternalClientSession::ExternalClientSession(OutboundKinds& kinds,
                                             std::shared_ptr<const RouteConfig> route,
                                             std::string client_id,
                                             std::unique_ptr<ClientLink> link,
                                             RouteWorkerCounters* counters)
    : kinds_(kinds),
      route_(std::move(route)),
      client_id_(std::move(client_id)),
      link_(std::move(link)),
      counters_(counters) {}

ExternalClientSession::~ExternalClientSession() { OnTerminated(); }

void ExternalClientSession::OnOpen() {
  opened_ = true;
  kinds_.registry().AddClient(client_id_);
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: client {} connected", route_->name, client_id_);
  }
}

void ExternalClientSession::OnTerminated() {
  if (terminated_) return;
  terminated_ = true;
  if (connector_) connector_->Cancel();
  connector_.reset();
  if (external_) external_->Close(1001, "client went away");
  external_.reset();
  ReleaseExternal();
  if (opened_) kinds_.registry().RemoveClient(client_id_);
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: client {} disconnected", route_->name, client_id_);
  }
}

void ExternalClientSession::Emit(const std::string& event) {
  if (terminated_) return;
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: to client {}: {}", route_->name, client_id_, event);
  }
  link_->SendText(event);
}

bool ExternalClientSession::OverRate() {
  const uint32_t limit = route_->external_client.messages_per_minute;
  const auto now = std::chrono::steady_clock::now();
  if (recent_.size() >= limit && now - recent_.front() < std::chrono::minutes(1)) return true;
  recent_.push_back(now);
  while (recent_.size() > limit) recent_.pop_front();
  return false;
}

void ExternalClientSession::OnMessage(const MessagePtr& msg) {
  if (terminated_) return;
  if (OverRate()) {
    const std::string reason =
        "rate limit exceeded: " + std::to_string(route_->external_client.messages_per_minute) +
        " messages per minute";
    if (kinds_.debug_events()) {
      spdlog::info("external_client {}: client {}: {}", route_->name, client_id_, reason);
    }
    link_->Close(1008, reason);
    return;
  }
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: from client {}: {}", route_->name, client_id_,
                 msg->get_payload());
  }
  if (msg->get_opcode() != websocketpp::frame::opcode::text) {
    Emit(protocol::InvalidFormatEvent("Invalid message format: expected a JSON text message",
                                      Now()));
    return;
  }
  protocol::ExternalCommand command = protocol::ParseExternalCommand(msg->get_payload());
  if (auto* bad = std::get_if<protocol::ExternalCommandError>(&command)) {
    Emit(protocol::InvalidFormatEvent(bad->message, Now()));
  } else if (auto* connect = std::get_if<protocol::ConnectExternal>(&command)) {
    if (state_ != State::kIdle) {
      Emit(protocol::ConnectionErrorEvent(
          "Already connected to an external WebSocket; send disconnect_external first",
          ExternalErrorCode::kFailed, Now()));
      return;
    }
    Connect(std::move(connect->url), std::move(connect->protocols), std::move(connect->headers));
  } else if (auto* send = std::get_if<protocol::SendExternalMessage>(&command)) {
    if (state_ == State::kConnecting) {
      pending_sends_.push_back(std::move(*send));  // bounded by messages_per_minute
      return;
    }
    SendNow(*send);
  } else {  // disconnect_external
    Disconnect();
  }
}

}  // namespace wsgate::dataplane::transport
