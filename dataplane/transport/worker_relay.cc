// Kind `websocket` from the worker's side: the relay host and the start of a relay.
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
// Kind `websocket`: the ProxyRelay (proxy_relay.h) takes the client socket and does both
// handshakes and the data path; the session keeps the registry, counters and limits.

// The relay's reports, delivered to the session if it still exists.
class Worker::RelayHostImpl : public RelayHost {
 public:
  RelayHostImpl(Worker* worker, WeakSession session) : w_(worker), s_(std::move(session)) {}

  void OnOpen(const std::string& subprotocol, double connect_seconds) override {
    if (SessionPtr s = s_.lock()) w_->OnRelayOpen(s, subprotocol, connect_seconds);
  }
  void OnRefused(int status) override {
    SessionPtr s = s_.lock();
    if (!s) return;
    if (!s->outcome_counted) {
      s->counters->CountOutcome(status == 504   ? ConnectionOutcome::kUpstreamTimeout
                                : status == 502 ? ConnectionOutcome::kUpstreamError
                                                : ConnectionOutcome::kRejected);
      s->outcome_counted = true;
    }
  }
  // Counted here, before OnRefused(502) would count it as a plain upstream error.
  void OnUpstreamTlsFailed(const std::string& reason) override {
    SessionPtr s = s_.lock();
    if (!s) return;
    spdlog::warn("route {}: upstream {}: TLS handshake failed: {}; answered 502", s->route->name,
                 s->bound_to, reason);
    if (!s->outcome_counted) {
      s->counters->CountOutcome(ConnectionOutcome::kUpstreamTlsError);
      s->outcome_counted = true;
    }
  }
  bool AdmitClientMessage() override {
    Session* s = raw();
    return s != nullptr && w_->AdmitClientMessage(*s);
  }
  void OnClientMessage(uint64_t bytes) override {
    if (Session* s = raw()) Count(*s, Direction::kFromClient, bytes, s->messages_in, s->bytes_in);
  }
  void OnUpstreamMessage(uint64_t bytes) override {
    if (Session* s = raw()) {
      Count(*s, Direction::kToClient, bytes, s->messages_out, s->bytes_out);
      s->limits.last_activity_ms = w_->limits_now_ms_;  // the idle clock sees sends too
    }
  }
  void OnClientPong() override {
    if (Session* s = raw()) s->limits.awaiting_pong = false;
  }
  void OnLimitHit(std::string_view limit) override {
    if (Session* s = raw()) w_->CountLimitHit(*s, limit);
  }
  void OnSendQueueExceeded() override {
    if (Session* s = raw()) {
      w_->CloseForLimit(*s, "send_queue_bytes", wsclose::policy_violation, "client too slow");
    }
  }
  void OnBackpressure() override {
    if (Session* s = raw()) w_->EmitSessionEvent(*s, sessions::SessionEvent::Type::kBackpressure);
  }
  void OnClientClosed(uint16_t code, const std::string& reason) override {
    if (SessionPtr s = s_.lock()) w_->OnRelayClientClosed(s, code, reason);
  }
  void OnDone() override {
    SessionPtr s = s_.lock();
    if (!s) return;
    s->client_open = false;
    s->client_done = true;
    w_->Finish(s);
  }

 private:
  static void Count(Session& s, Direction d, uint64_t bytes, uint64_t& messages,
                    uint64_t& total) {
    s.counters->CountMessage(d, bytes);
    ++messages;
    total += bytes;
    s.last_activity = sessions::CoarseNowUnixNanos();
  }

  // The per-message reports take no reference: the session owns the relay that calls, and the
  // relay reports nothing after OnDone, the only way its session ends (Finish).
  Session* raw() const { return raw_; }

  Worker* const w_;
  const WeakSession s_;
  Session* const raw_ = s_.lock().get();
};

namespace {

// The Host header for an upstream URL: the port only when it is not the default.
std::string HostHeader(const UpstreamUrl& target) {
  std::string host = target.host.find(':') != std::string::npos ? "[" + target.host + "]"
                                                                 : target.host;
  if (target.port != (target.secure ? 443 : 80)) host += ":" + std::to_string(target.port);
  return host;
}

}  // namespace

void Worker::StartRelay(const SessionPtr& s, const RequestHead& head) {
  const RouteConfig& route = *s->route;
  const WebSocketProxySettings& ws = route.websocket;
  if (ws.upstreams.empty()) {
    StartClient(s);  // websocketpp answers 502 (OnValidate)
    return;
  }
  uint32_t& next = next_upstream_[route.name];
  const UpstreamUrl& target = ws.upstreams[next++ % ws.upstreams.size()];
  s->bound_to = target.url;

  // The upstream handshake: the client's subprotocol offers, the route's forwarded and set
  // headers (a set header replaces a forwarded one of the same name), X-Forwarded-For like
  // nginx's $proxy_add_x_forwarded_for. Hop-by-hop and handshake headers are never copied.
  uint8_t nonce[16];
  for (int i = 0; i < 4; ++i) {
    const uint32_t r = mask_rng_();
    std::memcpy(nonce + 4 * i, &r, 4);
  }
  relay::UpstreamRequest req;
  req.host = HostHeader(target);
  req.target = target.path_and_query.empty() ? "/" : target.path_and_query;
  req.key = relay::WebSocketKey(nonce);
  req.subprotocols = head.subprotocols;
  auto is_set = [&](std::string_view lowercase_name) {
    for (const auto& [name, value] : ws.set_headers) {
      if (absl::EqualsIgnoreCase(name, absl::string_view(lowercase_name.data(),
                                                          lowercase_name.size()))) {
        return true;
      }
    }
    return false;
  };
  for (const std::string& name : ws.forward_headers) {
    if (IsHopByHopOrHandshakeHeader(name) || !head.HasHeader(name) || is_set(name)) continue;
    req.headers.emplace_back(name, head.Header(name));
  }
  for (const auto& [name, value] : ws.set_headers) {
    std::string lower = absl::AsciiStrToLower(name);
    if (IsHopByHopOrHandshakeHeader(lower) && lower != "x-forwarded-for") continue;
    if (lower == "x-forwarded-for") continue;  // ours below
    req.headers.emplace_back(name, value);
  }
  std::string xff = head.Header("x-forwarded-for");
  req.headers.emplace_back("X-Forwarded-For",
                           xff.empty() ? s->client_ip : xff + ", " + s->client_ip);

  ProxyRelay::ClientSide client_side;
  client_side.head_bytes = s->head_bytes;
  client_side.accept = relay::WebSocketAccept(head.Header("sec-websocket-key"));
  client_side.subprotocols = head.subprotocols;
  ProxyRelay::UpstreamSide upstream_side;
  upstream_side.host = target.host;
  upstream_side.port = target.port;
  upstream_side.request = relay::BuildUpstreamRequest(req);
  upstream_side.expected_accept = relay::WebSocketAccept(req.key);
  upstream_side.connect_timeout = ws.connect_timeout;
  if (target.secure) {
    upstream_side.secure = true;
    upstream_side.tls = ws.tls;
    upstream_side.server_name = ws.server_name;
  }

  // The websocketpp connection only ever held the socket: take it and let the object go.
  s->timer.cancel();
  if (s->lowat_raised) {
    SetReceiveLowWatermark(s->client->get_raw_socket(), 1);
    s->lowat_raised = false;
  }
  s->client_started = true;
  // Out of Asio's reactor: the relay registers the descriptor with the worker's EdgePoller.
  boost::system::error_code rec;
  int fd = s->client->get_raw_socket().release(rec);
  if (rec) fd = -1;  // the relay then ends the session at once
  s->client.reset();
  s->relay = std::make_shared<ProxyRelay>(*relay_ctx_, fd,
                                          std::make_unique<RelayHostImpl>(this, s));
  std::shared_ptr<ProxyRelay> relay = s->relay;  // Start may finish the session at once
  relay->Start(std::move(client_side), std::move(upstream_side), RelayLimitsOf(route.limits));
}

void Worker::OnRelayOpen(const SessionPtr& s, const std::string& subprotocol,
                         double connect_seconds) {
  s->upstream_subprotocol = subprotocol;
  s->counters->ObserveUpstreamConnect(connect_seconds);
  s->client_open = true;
  s->open_seen = true;
  EmitSessionEvent(*s, sessions::SessionEvent::Type::kOpened);
  s->counters->connections_active.Add(1);
  if (!s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kAccepted);
    s->outcome_counted = true;
  }
  OnLimitsOpen(s);
}

void Worker::OnRelayClientClosed(const SessionPtr& s, uint16_t code, const std::string& reason) {
  if (!s->client_open) return;
  s->client_open = false;
  s->counters->connections_active.Add(-1);
  s->counters->CountClose(code);
  EmitSessionEvent(*s, sessions::SessionEvent::Type::kClosed, code,
                   code == wsclose::abnormal_close ? std::string_view() : reason);
}

}  // namespace wsgate::dataplane::transport
