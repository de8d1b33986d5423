// Kind external_client: the messages between the two legs. A client's send_message goes out on
// the open leg (or waits while connecting, or fails), a frame from the external server becomes
// message_received; ExternalLeg's implementation is here too (send, close).
#include <memory>
#include <string>
#include <utility>
#include <websocketpp/close.hpp>
#include <websocketpp/frame.hpp>

#include "dataplane/kinds/external_client/external_client_internal.h"
#include "dataplane/protocol/external_client_codec.h"

namespace wsgate::dataplane::transport {

namespace {

using external_client_internal::Now;

template <typename ConPtr>
class LegImpl : public ExternalLeg {
 public:
  explicit LegImpl(ConPtr con) : con_(std::move(con)) {}
  // Nobody holds the leg any more: close it if that has not happened yet.
  ~LegImpl() override { Close(1001, "client went away"); }
  websocketpp::lib::error_code Send(const std::string& payload, bool binary) override {
    return con_->send(
        payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
  }
  void Close(uint16_t code, const std::string& reason) override {
    if (closed_) return;
    closed_ = true;
    // The handlers stay: this may run inside one of them, and the session's generation check
    // already ignores what a replaced leg still delivers.
    websocketpp::lib::error_code ec;  // invalid_state: already closing
    con_->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
  }

 private:
  ConPtr con_;
  bool closed_ = false;
};

}  // namespace

namespace external_client_internal {

std::shared_ptr<ExternalLeg> MakeLeg(ClientEndpoint::connection_ptr con) {
  return std::make_shared<LegImpl<ClientEndpoint::connection_ptr>>(std::move(con));
}

std::shared_ptr<ExternalLeg> MakeLeg(TlsClientEndpoint::connection_ptr con) {
  return std::make_shared<LegImpl<TlsClientEndpoint::connection_ptr>>(std::move(con));
}

}  // namespace external_client_internal

void ExternalClientSession::SendNow(const protocol::SendExternalMessage& send) {
  if (state_ != State::kOpen || !external_) {
    Emit(protocol::SendErrorEvent("Not connected to an external WebSocket", Now()));
    return;
  }
  websocketpp::lib::error_code ec = external_->Send(send.payload, send.binary);
  if (ec) {
    Emit(protocol::SendErrorEvent("Failed to send message: " + ec.message(), Now()));
  } else {
    Emit(protocol::MessageSentEvent(send.content, Now()));
  }
}

void ExternalClientSession::FailPendingSends(const std::string& why) {
  while (!pending_sends_.empty()) {
    pending_sends_.pop_front();
    Emit(protocol::SendErrorEvent("Failed to send message: " + why, Now()));
  }
}

void ExternalClientSession::OnExternalMessage(const MessagePtr& msg) {
  if (state_ != State::kOpen) return;
  Emit(protocol::MessageReceivedEvent(
      msg->get_payload(), msg->get_opcode() == websocketpp::frame::opcode::binary, Now()));
}

}  // namespace wsgate::dataplane::transport
