// Per-connection limits and the sweep that enforces the time-based ones.
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

// ---------------------------------------------------------------------------------------------
// Limits. Shared caps live in dataplane/limits/Admission (a mutex per handshake); the
// rest is per connection, on this thread: a token bucket per client message, a timestamp store
// per message, and one sweep timer per worker for the time-based limits.

void Worker::CountLimitHit(Session& s, std::string_view limit) {
  // The single place every refusal, drop and limit-driven close is counted and reported to
  // WatchSessions (an event only when somebody watches).
  s.counters->CountLimitHit(limits::LimitKindFromName(limit));
  EmitLimitHit(s, limit);
}

bool Worker::RefuseByAdmission(const SessionPtr& s, const RouteMatch& match,
                               bool websocketpp_can_answer) {
  const RouteLimits& l = s->route->limits;
  limits::AdmissionLimits caps;
  caps.max_connections = l.max_connections;
  caps.max_connections_per_client = l.max_connections_per_client;
  caps.max_connections_per_address = l.max_connections_per_address;
  caps.handshakes_per_second = l.handshakes_per_second;
  std::string client_id;
  if (!l.client_id_param.empty()) {
    for (const auto& [name, value] : match.params) {
      if (name == l.client_id_param) client_id = value;
    }
  }
  limits::Admission::Result r =
      options_.admission->Admit(s->route->name, caps, client_id, s->client_ip);
  if (r.ticket) {
    s->limits.ticket = std::move(r.ticket);
    return false;
  }
  CountLimitHit(*s, r.limit);
  s->plan = Session::Plan::kReject;
  s->reject_status = r.http_status;
  switch (r.verdict) {
    case limits::Admission::Verdict::kRouteFull:
      s->reject_body = "route at capacity (max_connections)\n";
      break;
    case limits::Admission::Verdict::kClientFull:
      s->reject_body = "too many connections for this client id (max_connections_per_client)\n";
      break;
    case limits::Admission::Verdict::kAddressFull:
      s->reject_body = "too many connections from this address (max_connections_per_address)\n";
      break;
    default:
      s->reject_body = "too many handshakes on this route (handshakes_per_second)\n";
      break;
  }
  s->limits.retry_after_seconds = r.retry_after_seconds;
  if (!websocketpp_can_answer) {
    // An old draft's handshake: websocketpp might accept it or answer 500, so answer it here.
    RejectBeforeStart(s, r.http_status, r.http_status == 429 ? "Too Many Requests"
                                                             : "Service Unavailable",
                      s->reject_body,
                      absl::StrCat("Retry-After: ", std::max(1, r.retry_after_seconds), "\r\n"));
    return true;
  }
  StartClient(s);
  return true;
}

void Worker::OnLimitsOpen(const SessionPtr& s) {
  ConnectionLimits& lim = s->limits;
  lim.config = s->route;
  if (!lim.config) return;
  const RouteLimits& l = lim.config->limits;
  const int64_t now = LimitsNowMs();
  lim.opened_ms = now;
  lim.last_activity_ms = now;
  lim.rate.Configure(l.messages_per_second, l.message_burst, std::chrono::steady_clock::now());
  // A pubsub connection opened without a generic ping interval keeps its own pinger for life.
  lim.pinger = s->route->kind != RouteKind::kPubSub || l.ping_interval_ms > 0;
  if (lim.pinger) {
    lim.next_ping_ms = now + l.ping_interval_ms;
    if (s->client) {  // the relay reports pongs itself (RelayHost::OnClientPong)
      WeakSession weak = s;
      s->client->set_pong_handler([weak](websocketpp::connection_hdl, std::string) {
        if (SessionPtr locked = weak.lock()) locked->limits.awaiting_pong = false;
      });
    }
  }
  if (s->kind) lim.tcp_bytes_sent = limits::TcpBytesSent(s->client->get_raw_socket().native_handle());
  if (l.NeedsSweep()) ArmLimitsSweep();
}

bool Worker::AdmitClientMessage(Session& s) {
  ConnectionLimits& lim = s.limits;
  lim.last_activity_ms = limits_now_ms_;
  if (lim.closing) return false;
  if (lim.rate.unlimited() || lim.rate.TryTake(std::chrono::steady_clock::now())) return true;
  if (lim.config->limits.rate_policy == RouteLimits::RatePolicy::kClose) {
    CloseForLimit(s, "messages_per_second", wsclose::policy_violation,
                  "message rate limit exceeded");
    return false;
  }
  CountLimitHit(s, "messages_per_second");
  // An error means the leg is closing: nothing to tell.
  if (s.relay) {
    s.relay->SendToClient(std::string_view(kRateLimitedFrame, sizeof(kRateLimitedFrame) - 1),
                          /*binary=*/false);
  } else {
    (void)s.client->send(kRateLimitedFrame, sizeof(kRateLimitedFrame) - 1,
                         websocketpp::frame::opcode::text);
  }
  return false;
}

bool Worker::SendToClientBounded(const SessionPtr& s, const MessagePtr& msg) {
  ConnectionLimits& lim = s->limits;
  lim.last_activity_ms = limits_now_ms_;
  // Framed in place so that websocketpp's send() only queues it (frame_in_place.h); a message
  // held by drop_oldest below is sent later as it is.
  FrameInPlace(*msg, /*masked=*/false, 0);
  const uint64_t bound = lim.config ? lim.config->limits.send_queue_bytes : 0;
  if (bound == 0) {
    s->client->send(msg);
    return s->client->get_buffered_amount() > options_.send_queue_bytes;
  }
  if (lim.closing) return false;
  if (lim.config->limits.slow_consumer == RouteLimits::SlowConsumer::kClose) {
    s->client->send(msg);
    if (s->client->get_buffered_amount() > bound) {
      CloseForLimit(*s, "send_queue_bytes", wsclose::policy_violation, "client too slow");
    }
    return false;
  }
  // drop_oldest: websocketpp's queue cannot drop what it holds, so wsgate holds the overflow
  // itself (at most `bound` bytes) and drops the oldest of that; it is flushed by the drain poll.
  const bool holding = lim.held && !lim.held->empty();
  if (!holding && s->client->get_buffered_amount() <= bound) {
    s->client->send(msg);
    return false;
  }
  if (!lim.held) lim.held = std::make_unique<std::deque<MessagePtr>>();
  lim.held->push_back(msg);
  lim.held_bytes += msg->get_payload().size();
  while (lim.held_bytes > bound && lim.held->size() > 1) {
    lim.held_bytes -= lim.held->front()->get_payload().size();
    lim.held->pop_front();
    CountLimitHit(*s, "send_queue_bytes");
  }
  PollUntilDrained(s);
  return false;
}

void Worker::CloseForLimit(Session& s, std::string_view limit, uint16_t code,
                           const std::string& reason) {
  if (s.limits.closing) return;
  s.limits.closing = true;
  CountLimitHit(s, limit);
  CloseClient(s, code, reason);
}

void Worker::ApplyLimitsToOpenSessions() {
  if (!snapshot_ || sessions_.empty()) return;
  std::unordered_map<std::string_view, const std::shared_ptr<const RouteConfig>*> by_name;
  by_name.reserve(snapshot_->routes.size());
  for (const auto& r : snapshot_->routes) by_name.emplace(r->name, &r);
  const int64_t now = LimitsNowMs();
  bool sweep = false;
  for (auto& [id, s] : sessions_) {
    ConnectionLimits& lim = s->limits;
    if (!lim.config || !s->client_open) continue;
    auto it = by_name.find(lim.config->name);
    if (it == by_name.end()) continue;  // route deleted: the connection keeps what it had
    const RouteLimits& old = lim.config->limits;
    const RouteLimits& l = (*it->second)->limits;
    if (s->relay) {
      s->relay->SetLimits(RelayLimitsOf(l));
    } else if (l.max_message_bytes != old.max_message_bytes) {
      s->client->set_max_message_size(l.max_message_bytes);
    }
    if (l.messages_per_second != old.messages_per_second || l.message_burst != old.message_burst) {
      lim.rate.Configure(l.messages_per_second, l.message_burst, std::chrono::steady_clock::now());
    }
    if (old.idle_timeout_ms == 0 && l.idle_timeout_ms > 0) {
      // The idle clock starts now: activity was not being recorded against a deadline.
      lim.last_activity_ms = now;
      if (s->kind) lim.tcp_bytes_sent = limits::TcpBytesSent(s->client->get_raw_socket().native_handle());
      lim.pings_since_check = 0;
    }
    if (l.ping_interval_ms != old.ping_interval_ms) {
      lim.next_ping_ms = now + l.ping_interval_ms;
      lim.awaiting_pong = false;
    }
    lim.config = *it->second;
    sweep = sweep || l.NeedsSweep();
  }
  if (sweep) ArmLimitsSweep();
}

void Worker::ArmLimitsSweep() {
  if (limits_sweep_armed_) return;
  if (!limits_timer_) limits_timer_ = std::make_unique<boost::asio::steady_timer>(ioc_);
  limits_sweep_armed_ = true;
  limits_now_ms_ = LimitsNowMs();
  // The first tick soon: a live update may have made some connection overdue already.
  limits_timer_->expires_after(std::chrono::milliseconds(10));
  limits_timer_->async_wait([this](const boost::system::error_code& ec) {
    limits_sweep_armed_ = false;
    if (!ec) LimitsSweep();
  });
}

// Every open connection with a time-based limit, once per tick. The tick is a quarter of the
// shortest such limit in force (20 ms .. 1 s), so a deadline is met within that quarter.
void Worker::LimitsSweep() {
  const int64_t now = LimitsNowMs();
  limits_now_ms_ = now;
  int64_t tick = 1000;
  bool any = false;
  std::vector<SessionPtr> to_visit;  // closing can finish a session: no erase under iteration
  for (auto& [id, s] : sessions_) {
    if (s->client_open && !s->limits.closing && s->limits.config &&
        s->limits.config->limits.NeedsSweep()) {
      to_visit.push_back(s);
    }
  }
  for (const SessionPtr& s : to_visit) {
    ConnectionLimits& lim = s->limits;
    if (!s->client_open || lim.closing) continue;
    const RouteLimits& l = lim.config->limits;
    any = true;
    auto consider = [&](int64_t ms) {
      if (ms > 0) tick = std::min(tick, ms / 4);
    };
    consider(l.idle_timeout_ms);
    consider(l.max_lifetime_ms);
    consider(l.ping_interval_ms);
    consider(l.ping_timeout_ms);
    if (l.send_queue_bytes > 0 && s->kind) consider(80);
    if (l.max_lifetime_ms > 0 && now - lim.opened_ms >= l.max_lifetime_ms) {
      CloseForLimit(*s, "max_lifetime_ms", wsclose::going_away, "session lifetime exceeded");
      continue;
    }
    if (l.idle_timeout_ms > 0 && now - lim.last_activity_ms >= l.idle_timeout_ms) {
      bool active = false;
      if (s->kind) {
        // The kind may have sent to the client: more bytes left than our own pings (2 each).
        const uint64_t sent = limits::TcpBytesSent(s->client->get_raw_socket().native_handle());
        active = sent > lim.tcp_bytes_sent + 2ull * lim.pings_since_check;
        lim.tcp_bytes_sent = sent;
        lim.pings_since_check = 0;
      }
      if (active) {
        lim.last_activity_ms = now;
      } else {
        CloseForLimit(*s, "idle_timeout_ms", wsclose::going_away, "idle timeout");
        continue;
      }
    }
    if (s->kind && l.send_queue_bytes > 0 &&
        s->client->get_buffered_amount() > l.send_queue_bytes) {
      // Kinds hand their messages to websocketpp themselves: the bound is checked here, and
      // what is already queued cannot be dropped, so both policies close.
      CloseForLimit(*s, "send_queue_bytes", wsclose::policy_violation, "client too slow");
      continue;
    }
    if (lim.pinger && l.ping_interval_ms > 0) {
      if (s->relay && s->relay->awaiting_upstream_pong() &&
          now - lim.upstream_ping_sent_ms >= l.ping_timeout_ms) {
        // The client is fine; what it talks to is not: 1011, as for an upstream that went away.
        CloseForLimit(*s, "ping_timeout_ms", wsclose::internal_endpoint_error,
                      "upstream ping timeout");
        s->relay->CloseUpstream(wsclose::going_away, "ping timeout");
        continue;
      }
      if (lim.awaiting_pong) {
        if (now - lim.ping_sent_ms >= l.ping_timeout_ms) {
          CloseForLimit(*s, "ping_timeout_ms", wsclose::going_away, "ping timeout");
          continue;
        }
      } else if (now >= lim.next_ping_ms) {
        bool pinged;
        if (s->relay) {
          pinged = s->relay->PingClient();
        } else {
          websocketpp::lib::error_code ec;
          s->client->ping("", ec);
          pinged = !ec;
        }
        if (s->relay && !s->relay->awaiting_upstream_pong() && s->relay->PingUpstream()) {
          lim.upstream_ping_sent_ms = now;
        }
        if (pinged) {
          lim.awaiting_pong = true;
          lim.ping_sent_ms = now;
          ++lim.pings_since_check;
        }
        lim.next_ping_ms = now + l.ping_interval_ms;
      }
    }
  }
  if (!any) return;  // nothing left to watch: the next open or update re-arms
  if (!limits_timer_) limits_timer_ = std::make_unique<boost::asio::steady_timer>(ioc_);
  limits_sweep_armed_ = true;
  limits_timer_->expires_after(std::chrono::milliseconds(std::max<int64_t>(tick, 20)));
  limits_timer_->async_wait([this](const boost::system::error_code& ec) {
    limits_sweep_armed_ = false;
    if (!ec) LimitsSweep();
  });
}

}  // namespace wsgate::dataplane::transport
