// What the sessions of the two fan-out kinds (`room`, `pubsub`) share: their client leg
// (FanoutClient), the handshake answer when the bus refuses a subscription, and path parameter
// lookup. Included only by the kinds' own sources (room/, pubsub/, fanout/).
//
// Threading: like the sessions, used only on the worker thread that owns the client.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "dataplane/kinds/fanout/fanout_kinds.h"
#include "dataplane/kinds/fanout/shared_frame.h"

namespace wsgate::dataplane::transport {

inline std::string ParamValue(const std::vector<std::pair<std::string, std::string>>& params,
                              const std::string& name) {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

inline PrepareResult Refused(absl::Status status) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return {nullptr, 504, "message bus subscription timed out\n"};
  }
  return {nullptr, 503, "message bus unavailable\n"};
}

// The client leg as the fan-out sessions use it: sends only while open, counts what it sends,
// and closes a client whose unsent queue grows past `max_queued` (it reads slower than the
// channel publishes; websocketpp's queue has no bound of its own).
class FanoutClient {
 public:
  // `on_too_slow` runs when the client is closed with 1008 (for the route's counter).
  FanoutClient(ServerConnectionPtr con, RouteWorkerCounters* counters, uint64_t max_queued,
               std::function<void()> on_too_slow)
      : con_(std::move(con)),
        counters_(counters),
        max_queued_(max_queued),
        on_too_slow_(std::move(on_too_slow)) {}

  bool open() const { return open_; }
  void set_traffic(std::shared_ptr<sessions::SessionTraffic> traffic) {
    traffic_ = std::move(traffic);
  }

  // Marks the leg open and sends what arrived before (in order).
  void Open() {
    open_ = true;
    while (!pending_.empty() && open_) {
      MessagePtr frame = std::move(pending_.front());
      pending_.pop_front();
      SendFrame(frame);
    }
    pending_.clear();
    pending_bytes_ = 0;
  }

  // A message of this client's own (its frame is built here: one copy of `payload`).
  void Send(const std::string& payload, bool binary) {
    if (closed_) return;
    SendFrame(PrepareServerFrame(payload, binary));
  }

  // A prepared frame, possibly queued on other clients too (SharedFrames): never modified here.
  // Before Open: queued (bounded like the send queue). After Close: dropped. Null (a text that
  // is not UTF-8): dropped.
  void SendFrame(const MessagePtr& frame) {
    if (closed_ || !frame) return;
    const size_t size = frame->get_payload().size();
    if (!open_) {
      pending_bytes_ += size;
      if (pending_bytes_ > max_queued_) {
        pending_.clear();
        closed_ = true;  // the handshake completes, then the close below is sent at once
        close_on_open_ = true;
        return;
      }
      pending_.push_back(frame);
      return;
    }
    if (con_->get_state() != websocketpp::session::state::open) return;
    websocketpp::lib::error_code ec = con_->send(frame);
    if (ec) return;  // the leg is closing: dropped
    counters_->CountMessage(Direction::kToClient, size);
    if (traffic_) traffic_->CountOut(size);
    if (con_->get_buffered_amount() > max_queued_) CloseTooSlow();
  }

  void CloseTooSlow() {
    if (on_too_slow_) on_too_slow_();
    Close(1008, "client too slow");
  }

  void Close(uint16_t code, const std::string& reason) {
    closed_ = true;
    websocketpp::lib::error_code ec;  // invalid_state: already closing
    con_->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
  }

  // After Open: whether a pre-open overflow asked for a close.
  bool close_on_open() const { return close_on_open_; }

 private:
  ServerConnectionPtr con_;
  RouteWorkerCounters* counters_;
  std::shared_ptr<sessions::SessionTraffic> traffic_;  // the session registry's view (may be null)
  const uint64_t max_queued_;
  const std::function<void()> on_too_slow_;
  bool open_ = false;
  bool closed_ = false;
  bool close_on_open_ = false;
  std::deque<MessagePtr> pending_;  // prepared frames, in order
  uint64_t pending_bytes_ = 0;
};

}  // namespace wsgate::dataplane::transport
