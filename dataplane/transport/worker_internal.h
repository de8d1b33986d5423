// Private to the worker's own .cc files: the per-connection Session that the worker's concerns
// (accept and head routing, the client leg, the relay host, limits, the session registry) share,
// and the small helpers more than one of them uses. Nothing outside dataplane/transport/worker*.cc
// includes this.
//
// Threading: everything here belongs to one worker thread (see worker.h).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dataplane/limits/admission.h"
#include "dataplane/limits/socket_bytes.h"
#include "dataplane/limits/token_bucket.h"
#include "dataplane/kinds/outbound/outbound_kinds.h"
#include "dataplane/kinds/websocket/proxy_relay.h"
#include "dataplane/transport/worker.h"

namespace wsgate::dataplane::transport {

// Headers that describe the client's own hop or its own handshake: never copied upstream, even
// if a route lists them (the upstream handshake makes its own).
inline bool IsHopByHopOrHandshakeHeader(std::string_view lowercase_name) {
  static constexpr std::string_view kNames[] = {"connection",
                                                "upgrade",
                                                "host",
                                                "content-length",
                                                "transfer-encoding",
                                                "keep-alive",
                                                "te",
                                                "trailer",
                                                "proxy-connection",
                                                "sec-websocket-key",
                                                "sec-websocket-version",
                                                "sec-websocket-extensions",
                                                "sec-websocket-protocol",
                                                "x-forwarded-for"};
  for (std::string_view n : kNames) {
    if (n == lowercase_name) return true;
  }
  return false;
}

inline bool SetReceiveLowWatermark(boost::asio::ip::tcp::socket& socket, int bytes) {
  return ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes)) == 0;
}

// Pausing and resuming a websocketpp 0.8.2 leg without its race. pause_reading() only posts
// handle_pause_reading(), so the handle_read_frame() that called our message handler queues the
// next read first, and a later resume_reading() starts a second read on the same buffer while
// that one is outstanding. Instead we call handle_pause_reading() directly, and only from the
// leg's own message handler: handle_read_frame() then finishes the bytes it holds and returns
// without queueing a read, so from that point no read is outstanding. Resuming
// (handle_resume_reading() = set the flag, queue one read) is therefore safe exactly once per
// pause, which the session's `*_paused` flags guarantee.
template <typename Connection>
void PauseReadingInMessageHandler(Connection& con) {
  con.handle_pause_reading();
}

template <typename Connection>
void ResumeReading(Connection& con) {
  auto state = con.get_state();
  // A closed leg has no socket left to read; an open or closing one needs its reads back to see
  // the peer's data, close frame or EOF.
  if (state == websocketpp::session::state::open ||
      state == websocketpp::session::state::closing) {
    con.handle_resume_reading();
  }
}

// Frees a leg's parsed handshake (header maps and strings of the request and the response, about
// 0.9 KiB per leg) once the leg is open. websocketpp keeps both for the connection's whole life
// but reads them again only to log, which is compiled out (ws_config.h). get_request() and
// get_response() return references to the connection's own non-const members, so assigning
// fresh objects through const_cast is well defined.
template <typename Connection>
void ReleaseHandshake(Connection& con) {
  using Request = std::decay_t<decltype(con.get_request())>;
  using Response = std::decay_t<decltype(con.get_response())>;
  const_cast<Request&>(con.get_request()) = Request();
  const_cast<Response&>(con.get_response()) = Response();
}

// A worker made without a data plane (tests) gets its own session registry.
inline WorkerOptions WithSessionRegistry(WorkerOptions options) {
  if (!options.session_ids) options.session_ids = std::make_shared<sessions::SessionIdRegistry>();
  if (!options.session_events) {
    options.session_events = std::make_shared<sessions::SessionEventHub>();
  }
  if (!options.connection_cap) options.connection_cap = std::make_shared<limits::ConnectionCap>(0);
  return options;
}

inline constexpr std::chrono::milliseconds kFirstDrainPoll{1};
inline constexpr std::chrono::milliseconds kMaxDrainPoll{32};

inline int64_t LimitsNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The relay's share of a route's limits (also applied live to open relays).
inline RelayLimits RelayLimitsOf(const RouteLimits& l) {
  RelayLimits r;
  r.max_message_bytes = l.max_message_bytes;
  r.send_queue_bytes = l.send_queue_bytes;
  r.drop_oldest = l.slow_consumer == RouteLimits::SlowConsumer::kDropOldest;
  return r;
}

// What a client whose message was dropped by RATE_POLICY_DROP receives (docs/limits.md).
inline constexpr char kRateLimitedFrame[] = R"({"error":"rate_limited","limit":"messages_per_second"})";

// What the limits need per connection (docs/limits.md, dataplane/limits/README.md).
struct ConnectionLimits {
  // The route config whose `limits` apply: the session's own route, replaced by the same-named
  // route of each new snapshot (live updates), so the hot path reads one pointer.
  std::shared_ptr<const RouteConfig> config;
  // The connection's place in the shared admission counters; released when the session ends.
  std::unique_ptr<limits::Admission::Ticket> ticket;
  limits::TokenBucket rate;
  int retry_after_seconds = 0;  // Retry-After of a handshake refused by admission
  bool closing = false;         // a limit closed it: count once, drop what still arrives
  int64_t opened_ms = 0;        // the worker's clock (LimitsNowMs)
  int64_t last_activity_ms = 0;
  // Generic pinger: false on pubsub connections opened with ping_interval_ms 0 (their own
  // WS_PING_* pinger runs; the two never both run).
  bool pinger = false;
  bool awaiting_pong = false;
  int64_t ping_sent_ms = 0;
  int64_t upstream_ping_sent_ms = 0;  // websocket kind: the upstream leg is pinged too
  int64_t next_ping_ms = 0;
  // Route kinds send to the client themselves: their outgoing activity is read from the socket
  // (TCP_INFO bytes sent, less our own 2-byte pings) when the idle deadline comes.
  uint64_t tcp_bytes_sent = 0;
  uint32_t pings_since_check = 0;
  // drop_oldest: messages held by wsgate while websocketpp's queue is above the bound.
  std::unique_ptr<std::deque<MessagePtr>> held;
  size_t held_bytes = 0;
};

// One client connection and, for proxied routes, its upstream leg. Owned by the worker's session
// map; websocketpp callbacks hold only weak references, so a callback that arrives after the
// session is gone does nothing.
struct Worker::Session {
  explicit Session(boost::asio::io_context& ioc) : timer(ioc) {}

  enum class Plan { kUndecided, kHttp, kReject, kEcho, kProxy, kKind };

  uint64_t id = 0;
  // The client leg while websocketpp serves it (every plan but kProxy, whose socket moves to
  // `relay` once the route is known; then this is null).
  ServerConnectionPtr client;
  // Kind `websocket`: both legs (proxy_relay.h).
  std::shared_ptr<ProxyRelay> relay;
  // Head deadline while the request head is read; the drain poll afterwards.
  boost::asio::steady_timer timer;

  Plan plan = Plan::kUndecided;
  int reject_status = 400;
  std::string reject_body;
  std::string target;
  std::string client_ip;
  std::shared_ptr<const RouteConfig> route;  // null for unrouted requests
  std::shared_ptr<KindSession> kind;          // with Plan::kKind (http_bridge, external_client)
  RouteWorkerCounters* counters = nullptr;   // never null once the head is parsed

  size_t peeked = 0;
  size_t head_bytes = 0;  // length of the request head (once complete)
  bool lowat_raised = false;
  std::string raw_response;  // a response written before websocketpp takes over
  bool client_started = false;
  bool client_open = false;
  bool shutdown_closed = false;  // PostCloseSome closed it: the next pacing step skips it
  bool client_done = false;
  bool outcome_counted = false;
  bool holds_cap_place = false;  // counted in the process-wide ConnectionCap

  std::string upstream_subprotocol;
  ConnectionLimits limits;

  // Backpressure (echo): the worker stopped reading the client because its own send queue is
  // above the bound. websocketpp has no hook for "queue drained", so `timer` polls while it is
  // paused, backing off from kFirstDrainPoll to kMaxDrainPoll. (The relay has its own.)
  bool client_paused = false;
  bool drain_poll_armed = false;
  std::chrono::milliseconds drain_poll_interval{0};

  // Session registry. `sid` is empty until RegisterSession (routed WebSocket
  // handshakes only). Counters are plain integers: only this worker touches them.
  std::string sid;
  uint16_t client_port = 0;
  std::string path;
  std::vector<std::pair<std::string, std::string>> path_params;
  std::string user_agent;
  std::string bound_to;
  sessions::UnixNanos connected_at = 0;
  sessions::UnixNanos last_activity = 0;
  uint64_t messages_in = 0;
  uint64_t bytes_in = 0;
  uint64_t messages_out = 0;
  uint64_t bytes_out = 0;
  bool open_seen = false;  // the client leg opened (an "opened" event was due)
  // What a route kind sent to the client itself (room, pubsub, http_bridge, external_client).
  std::shared_ptr<sessions::SessionTraffic> kind_traffic;
};

}  // namespace wsgate::dataplane::transport
