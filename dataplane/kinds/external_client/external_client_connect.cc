// Kind external_client: the session's outbound leg from connect_external to its release: the
// pre-check and the per-client slot, the connector and its outcome, disconnect_external, a close
// from the server.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/external_client/external_client_internal.h"
#include "dataplane/protocol/external_client_codec.h"

namespace wsgate::dataplane::transport {

using external_client_internal::Now;
using external_client_internal::PreCheck;
using protocol::ExternalErrorCode;

void ExternalClientSession::Connect(std::string url, std::vector<std::string> protocols,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  const auto& settings = route_->external_client;
  if (auto refused = PreCheck(*route_->outbound, url)) {
    if (refused->refusal) counters_->targets_refused[*refused->refusal].Add();
    Emit(protocol::ConnectionErrorEvent(refused->message,
                                        static_cast<ExternalErrorCode>(refused->code), Now()));
    Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kError, Now()));
    return;
  }
  if (!kinds_.registry().TryAddExternal(route_->name, client_id_,
                                        settings.max_connections_per_client)) {
    Emit(protocol::ConnectionErrorEvent(
        "Maximum of " + std::to_string(settings.max_connections_per_client) +
            " concurrent external connections for this client reached",
        ExternalErrorCode::kLimitExceeded, Now()));
    return;
  }
  slot_held_ = true;
  state_ = State::kConnecting;
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kConnecting, Now()));
  std::weak_ptr<ExternalClientSession> weak = weak_from_this();
  const uint64_t generation = ++leg_generation_;
  ExternalConnector::Handlers handlers;
  handlers.on_message = [weak, generation](const MessagePtr& m) {
    auto self = weak.lock();
    if (self && self->leg_generation_ == generation) self->OnExternalMessage(m);
  };
  handlers.on_close = [weak, generation]() {
    auto self = weak.lock();
    if (self && self->leg_generation_ == generation && self->external_) self->OnExternalClose();
  };
  connector_ = ExternalConnector::Start(kinds_, route_->outbound, url, protocols, headers,
                                        settings.connect_timeout, route_->limits.max_message_bytes,
                                        std::move(handlers), [weak](ExternalConnector::Result r) {
                                          if (auto self = weak.lock())
                                            self->OnConnectDone(std::move(r));
                                        });
}

void ExternalClientSession::OnConnectDone(ExternalConnector::Result result) {
  connector_.reset();
  if (terminated_) return;
  if (!result.ok) {
    ReleaseExternal();
    if (result.refusal) counters_->targets_refused[*result.refusal].Add();
    Emit(protocol::ConnectionErrorEvent(result.message, static_cast<ExternalErrorCode>(result.code),
                                        Now()));
    Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kError, Now()));
    FailPendingSends(result.message);
    return;
  }
  external_ = std::move(result.leg);
  state_ = State::kOpen;
  counters_->external_connections_active.Add(1);
  counters_->external_connections_opened.Add();
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kConnected, Now()));
  while (!pending_sends_.empty() && state_ == State::kOpen) {
    protocol::SendExternalMessage send = std::move(pending_sends_.front());
    pending_sends_.pop_front();
    SendNow(send);
  }
}

void ExternalClientSession::Disconnect() {
  FailPendingSends("Disconnected before the connection was open");
  if (connector_) connector_->Cancel();
  connector_.reset();
  if (external_) external_->Close(1000, "disconnect_external");
  external_.reset();
  ++leg_generation_;
  ReleaseExternal();
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kDisconnected, Now()));
}

void ExternalClientSession::OnExternalClose() {
  external_.reset();
  ReleaseExternal();
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kDisconnected, Now()));
}

void ExternalClientSession::ReleaseExternal() {
  if (state_ == State::kOpen) counters_->external_connections_active.Add(-1);
  state_ = State::kIdle;
  if (slot_held_) {
    kinds_.registry().RemoveExternal(route_->name, client_id_);
    slot_held_ = false;
  }
}

}  // namespace wsgate::dataplane::transport
