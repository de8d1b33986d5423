// The client leg while websocketpp serves it (every kind but `websocket`): callbacks and
// backpressure.
#include "dataplane/transport/worker_internal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dataplane/codec/ws_handshake.h"
#include "dataplane/kinds/fanout/fanout_kinds.h"
#include "dataplane/codec/frame_in_place.h"
#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

using boost::asio::ip::tcp;
namespace wsclose = websocketpp::close::status;

void Worker::PauseClientReading(const SessionPtr& s) {
  if (s->client_paused) return;
  PauseReadingInMessageHandler(*s->client);
  s->client_paused = true;
  EmitSessionEvent(*s, sessions::SessionEvent::Type::kBackpressure);
  PollUntilDrained(s);
}

void Worker::PollUntilDrained(const SessionPtr& s) {
  if (s->drain_poll_interval.count() == 0) s->drain_poll_interval = kFirstDrainPoll;
  ArmDrainPoll(s);
}

void Worker::ArmDrainPoll(const SessionPtr& s) {
  if (s->drain_poll_armed) return;
  s->drain_poll_armed = true;
  WeakSession weak = s;
  s->timer.expires_after(s->drain_poll_interval);
  s->timer.async_wait([this, weak](const boost::system::error_code& ec) {
    SessionPtr locked = weak.lock();
    if (!locked) return;
    locked->drain_poll_armed = false;
    // Cancelled: whoever took the timer over owns it now; a later pause re-arms the poll.
    if (!ec) OnDrainPoll(locked);
  });
}

void Worker::OnDrainPoll(const SessionPtr& s) {
  const size_t low = options_.send_queue_bytes / 2;
  ConnectionLimits& lim = s->limits;
  if (lim.held && !lim.held->empty()) {
    // drop_oldest: hand what wsgate holds to websocketpp once its queue is back under the bound.
    if (!s->client_open) {
      lim.held->clear();
      lim.held_bytes = 0;
    } else {
      const uint64_t bound = lim.config->limits.send_queue_bytes;
      while (!lim.held->empty() && (bound == 0 || s->client->get_buffered_amount() <= bound)) {
        lim.held_bytes -= lim.held->front()->get_payload().size();
        s->client->send(lim.held->front());
        lim.held->pop_front();
      }
    }
  }
  const bool holding = lim.held && !lim.held->empty();
  if (s->client_paused && s->client->get_buffered_amount() <= low) {
    s->client_paused = false;
    ResumeReading(*s->client);
  }
  if (!s->client_paused && !holding) {
    s->drain_poll_interval = std::chrono::milliseconds(0);
    return;
  }
  s->drain_poll_interval = std::min(s->drain_poll_interval * 2, kMaxDrainPoll);
  ArmDrainPoll(s);
}

// ---------------------------------------------------------------------------------------------
// The client leg.

bool Worker::OnValidate(const SessionPtr& s) {
  auto reject = [&](int status, const std::string& body, ConnectionOutcome outcome) {
    RespondHttp(*s->client, status, body);
    if (s->limits.retry_after_seconds > 0) {
      try {
        s->client->replace_header("Retry-After", std::to_string(s->limits.retry_after_seconds));
      } catch (const std::exception&) {
      }
    }
    if (s->route && !s->outcome_counted) {
      s->counters->CountOutcome(outcome);
      s->outcome_counted = true;
    }
    return false;
  };
  if (closing_all_) {
    return reject(503, "server shutting down\n", ConnectionOutcome::kRejected);
  }
  switch (s->plan) {
    case Session::Plan::kEcho:
      return true;
    case Session::Plan::kKind:
      if (s->kind) s->kind->OnValidate();  // e.g. the subprotocol a pubsub route selects
      return true;
    case Session::Plan::kProxy:
      // Only a `websocket` route the relay could not take (no upstream, wss://) gets here.
      return reject(502, "upstream unavailable\n", ConnectionOutcome::kUpstreamError);
    case Session::Plan::kReject:
      return reject(s->reject_status, s->reject_body, ConnectionOutcome::kRejected);
    default:
      // websocketpp sees a WebSocket handshake where the head parser did not.
      return reject(400, "bad WebSocket handshake\n", ConnectionOutcome::kRejected);
  }
}

void Worker::OnHttp(const SessionPtr& s) {
  ServerEndpoint::connection_type& c = *s->client;
  std::string_view path = TargetPath(c.get_resource());
  if (path == "/health") {
    // Liveness only: a Redis outage makes the gateway unready, not dead (see /ready).
    RespondHttp(c, 200, "{\"status\":\"healthy\"}", "application/json");
    return;
  }
  if (fanout_kinds_ && fanout_kinds_->HandleHttp(s->client, path, s->route == nullptr, snapshot_)) {
    return;
  }
  if (outbound_kinds_->HandleHttp(s->client, path, snapshot_)) return;
  if (path == "/ready") {
    if (fanout_kinds_ && fanout_kinds_->bus_down()) {
      RespondHttp(c, 503, "{\"status\":\"not_ready\",\"redis\":\"down\"}", "application/json");
    } else if (health_ != nullptr && health_->ready()) {
      RespondHttp(c, 200, "{\"status\":\"ready\"}", "application/json");
    } else {
      RespondHttp(c, 503, "{\"status\":\"shutting_down\"}", "application/json");
    }
    return;
  }
  if (s->plan == Session::Plan::kReject) {
    RespondHttp(c, s->reject_status, s->reject_body);
    return;
  }
  if (s->route) {
    RespondHttp(c, 426, "this path only serves WebSocket connections\n");
    try {
      c.replace_header("Upgrade", "websocket");
    } catch (const std::exception&) {
    }
    if (!s->outcome_counted) {
      s->counters->CountOutcome(ConnectionOutcome::kRejected);
      s->outcome_counted = true;
    }
    return;
  }
  CountRefusal(RefusalReason::kNoRoute, s->client_ip);
  RespondHttp(c, 404, "not found\n");
}

void Worker::OnClientOpen(const SessionPtr& s) {
  s->client_open = true;
  s->open_seen = true;
  EmitSessionEvent(*s, sessions::SessionEvent::Type::kOpened);
  boost::system::error_code ec;
  s->client->get_raw_socket().set_option(tcp::no_delay(true), ec);
  s->counters->connections_active.Add(1);
  if (!s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kAccepted);
    s->outcome_counted = true;
  }
  OnLimitsOpen(s);
  if (s->kind) {
    s->kind->OnOpen();
    return;
  }
  ReleaseHandshake(*s->client);
}

void Worker::OnClientMessage(const SessionPtr& s, MessagePtr msg) {
  const size_t size = msg->get_payload().size();
  s->counters->CountMessage(Direction::kFromClient, size);
  ++s->messages_in;
  s->bytes_in += size;
  s->last_activity = sessions::CoarseNowUnixNanos();
  if (!AdmitClientMessage(*s)) return;
  if (s->kind) {
    s->kind->OnMessage(msg);
    return;
  }
  if (s->plan == Session::Plan::kEcho) {
    s->counters->CountMessage(Direction::kToClient, size);
    ++s->messages_out;
    s->bytes_out += size;
    // A client that sends faster than it reads is its own slow consumer.
    if (SendToClientBounded(s, msg)) PauseClientReading(s);
  }
}

void Worker::OnClientClose(const SessionPtr& s) {
  s->client_open = false;
  s->counters->connections_active.Add(-1);
  s->counters->CountClose(s->client->get_local_close_code());
  if (s->client->get_local_close_code() == wsclose::message_too_big) {
    CountLimitHit(*s, "max_message_bytes");
  }
}

void Worker::OnClientFail(const SessionPtr& s) {
  if (s->route && !s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kRejected);
    s->outcome_counted = true;
  }
}

void Worker::OnClientTerminated(const SessionPtr& s) {
  if (s->open_seen && options_.session_events->active()) {
    // After a close handshake the local code is the one both sides agreed on (ours, or the
    // client's echoed); a dropped TCP connection leaves websocketpp's 1006.
    const uint16_t code = s->client->get_local_close_code();
    EmitSessionEvent(*s, sessions::SessionEvent::Type::kClosed, code,
                     code == wsclose::abnormal_close ? std::string_view()
                                                     : s->client->get_local_close_reason());
  }
  if (s->kind) s->kind->OnTerminated();
  s->client_open = false;
  s->client_done = true;
  Finish(s);
}

void Worker::CloseClient(Session& s, uint16_t code, const std::string& reason) {
  if (s.relay) {
    s.relay->CloseClient(code, reason);
    return;
  }
  if (s.client_paused) {
    // The close handshake needs the client's answer.
    s.client_paused = false;
    ResumeReading(*s.client);
  }
  websocketpp::lib::error_code ec;  // invalid_state: already closing, nothing to do
  s.client->close(static_cast<wsclose::value>(code), code == wsclose::blank ? "" : reason, ec);
}

void Worker::CloseUpstream(Session& s, uint16_t code, const std::string& reason) {
  if (s.relay) s.relay->CloseUpstream(code, reason);
}

}  // namespace wsgate::dataplane::transport
