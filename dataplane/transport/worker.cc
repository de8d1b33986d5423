#include "dataplane/transport/worker.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <boost/asio/post.hpp>
#include <deque>
#include <boost/asio/write.hpp>
#include <exception>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dataplane/transport/http_response.h"
#include "dataplane/transport/fanout_kinds.h"
#include "dataplane/transport/frame_in_place.h"
#include "dataplane/limits/socket_bytes.h"
#include "dataplane/limits/token_bucket.h"
#include "dataplane/transport/outbound_kinds.h"
#include "dataplane/transport/proxy_relay.h"
#include "dataplane/relay/ws_handshake.h"

namespace wsgate::dataplane::transport {

namespace {

using boost::asio::ip::tcp;
namespace wsclose = websocketpp::close::status;

// Headers that describe the client's own hop or its own handshake: never copied upstream, even
// if a route lists them (the upstream handshake makes its own).
bool IsHopByHopOrHandshakeHeader(std::string_view lowercase_name) {
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

bool SetReceiveLowWatermark(tcp::socket& socket, int bytes) {
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
WorkerOptions WithSessionRegistry(WorkerOptions options) {
  if (!options.session_ids) options.session_ids = std::make_shared<sessions::SessionIdRegistry>();
  if (!options.session_events) {
    options.session_events = std::make_shared<sessions::SessionEventHub>();
  }
  return options;
}

constexpr std::chrono::milliseconds kFirstDrainPoll{1};
constexpr std::chrono::milliseconds kMaxDrainPoll{32};

}  // namespace

// Issue 5: what the limits need per connection (README "Limits", dataplane/limits/README.md).
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
  int64_t next_ping_ms = 0;
  // Route kinds send to the client themselves: their outgoing activity is read from the socket
  // (TCP_INFO bytes sent, less our own 2-byte pings) when the idle deadline comes.
  uint64_t tcp_bytes_sent = 0;
  uint32_t pings_since_check = 0;
  // drop_oldest: messages held by wsgate while websocketpp's queue is above the bound.
  std::unique_ptr<std::deque<MessagePtr>> held;
  size_t held_bytes = 0;
};

namespace {

int64_t LimitsNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using limits::TcpBytesSent;

// What a client whose message was dropped by RATE_POLICY_DROP receives (README "Limits").
constexpr char kRateLimitedFrame[] = R"({"error":"rate_limited","limit":"messages_per_second"})";

}  // namespace

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
  bool client_done = false;
  bool outcome_counted = false;

  std::string upstream_subprotocol;
  ConnectionLimits limits;  // issue 5

  // Backpressure (echo): the worker stopped reading the client because its own send queue is
  // above the bound. websocketpp has no hook for "queue drained", so `timer` polls while it is
  // paused, backing off from kFirstDrainPoll to kMaxDrainPoll. (The relay has its own.)
  bool client_paused = false;
  bool drain_poll_armed = false;
  std::chrono::milliseconds drain_poll_interval{0};

  // Session registry (issue 5). `sid` is empty until RegisterSession (routed WebSocket
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

Worker::Worker(int index, SnapshotPtr initial, common::HealthState* health, WorkerOptions options,
               std::function<void()> on_drained)
    : index_(index),
      options_(WithSessionRegistry(std::move(options))),
      health_(health),
      on_drained_(std::move(on_drained)),
      work_(boost::asio::make_work_guard(ioc_)),
      acceptor_(ioc_),
      accept_retry_timer_(ioc_),
      snapshot_(std::move(initial)) {
  applied_version_.store(snapshot_ ? snapshot_->version : 0, std::memory_order_relaxed);
  server_.clear_access_channels(websocketpp::log::alevel::all);
  server_.clear_error_channels(websocketpp::log::elevel::all);
  client_.clear_access_channels(websocketpp::log::alevel::all);
  client_.clear_error_channels(websocketpp::log::elevel::all);
  websocketpp::lib::error_code ec;
  server_.init_asio(&ioc_, ec);
  if (!ec) client_.init_asio(&ioc_, ec);
  if (ec) {
    // Only fails when called twice on one endpoint: a programming error.
    spdlog::critical("worker {}: websocketpp init_asio failed: {}", index_, ec.message());
    std::terminate();
  }
  outbound_kinds_ =
      std::make_unique<OutboundKinds>(ioc_, client_, index_, options_.external_clients);
  relay_ctx_ = std::make_unique<RelayContext>(ioc_, mask_rng_);
  relay_ctx_->backpressure_bytes = options_.send_queue_bytes;
  server_.set_user_agent("wsgate");
  client_.set_user_agent("wsgate");
}

Worker::~Worker() {
  if (thread_.joinable()) StopAndJoin();
  // The thread is gone: tear down on this thread, connections before the endpoints and the
  // io_context (member order does the rest).
  boost::system::error_code ec;
  acceptor_.close(ec);
  sessions_.clear();
}

absl::Status Worker::Listen(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (!ec) local_port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    boost::system::error_code cec;
    acceptor_.close(cec);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", endpoint.address().to_string(),
                                               ":", endpoint.port(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

void Worker::AttachBus(bus::MessageBus* bus, std::shared_ptr<RoomRegistry> rooms,
                       std::shared_ptr<FanoutEvents> events) {
  fanout_kinds_ = std::make_unique<FanoutKinds>(index_, bus, std::move(rooms), std::move(events));
}

void Worker::StartThread() {
  boost::asio::post(ioc_, [this] { Accept(); });
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    Run();
  });
}

void Worker::Run() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      // Our handlers throw nothing; this is a library throwing from a callback. Keep serving the
      // other connections.
      spdlog::error("worker {}: exception escaped a handler: {}", index_, e.what());
    }
  }
}

void Worker::StopAndJoin() {
  ioc_.stop();
  if (thread_.joinable()) thread_.join();
  // A StopAccepting posted just before may not have run before the loop stopped; the thread is
  // gone now, so closing here is safe and a stopped data plane never keeps a listener open
  // (the kernel would otherwise still complete handshakes into its backlog).
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void Worker::PostSnapshot(SnapshotPtr snapshot) {
  boost::asio::post(ioc_, [this, snapshot = std::move(snapshot)]() mutable {
    uint64_t version = snapshot->version;
    snapshot_ = std::move(snapshot);
    ApplyLimitsToOpenSessions();
    applied_version_.store(version, std::memory_order_relaxed);
  });
}

void Worker::PostStopAccepting() {
  boost::asio::post(ioc_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    accept_retry_timer_.cancel();
  });
}

void Worker::PostCloseAll(uint16_t code, std::string reason) {
  boost::asio::post(ioc_, [this, code, reason = std::move(reason)] {
    closing_all_ = true;
    close_all_code_ = code;
    close_all_reason_ = reason;
    // Closing can finish sessions synchronously: iterate over a copy.
    std::vector<SessionPtr> all;
    all.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) all.push_back(s);
    for (const SessionPtr& s : all) {
      if (s->relay) {
        if (!s->relay->Refuse(503, "server shutting down\n")) {
          s->relay->CloseClient(code, reason);
          s->relay->CloseUpstream(1001, "server shutting down");
        }
        continue;
      }
      if (!s->client_started) {
        // Still reading the head: drop it.
        AbortBeforeStart(s);
        continue;
      }
      if (s->client_open) CloseClient(*s, code, reason);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Accepting and reading the request head.

void Worker::Accept() {
  if (!acceptor_.is_open()) return;
  ServerConnectionPtr con = server_.get_connection();
  if (!con) {
    spdlog::error("worker {}: websocketpp could not create a connection", index_);
    return;
  }
  // accept() fills in the peer's address itself: no getpeername() per connection.
  acceptor_.async_accept(con->get_raw_socket(), accept_peer_,
                         [this, con](const boost::system::error_code& ec) { OnAccept(con, ec); });
}

void Worker::OnAccept(ServerConnectionPtr con, const boost::system::error_code& ec) {
  if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // EMFILE and friends: retrying at once would spin.
    spdlog::warn("worker {}: accept failed: {}", index_, ec.message());
    accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
    accept_retry_timer_.async_wait([this](const boost::system::error_code& tec) {
      if (!tec) Accept();
    });
    return;
  }
  // Read before Accept(): the next accept may complete speculatively into the same member.
  const tcp::endpoint peer = accept_peer_;
  Accept();

  auto s = std::make_shared<Session>(ioc_);
  s->id = next_session_id_++;
  s->client = std::move(con);
  s->client_done = false;
  s->counters = &unrouted_counters_;
  sessions_.emplace(s->id, s);
  live_connections_.store(static_cast<int64_t>(sessions_.size()), std::memory_order_relaxed);

  tcp::socket& socket = s->client->get_raw_socket();
  boost::system::error_code sec;
  s->client_ip = peer.address().to_string();
  s->client_port = peer.port();
  socket.non_blocking(true, sec);

  InstallClientHandlers(s);

  WeakSession weak = s;
  s->timer.expires_after(options_.head_timeout);
  s->timer.async_wait([this, weak](const boost::system::error_code& tec) {
    if (tec) return;
    if (SessionPtr locked = weak.lock(); locked && !locked->client_started) {
      AbortBeforeStart(locked);
    }
  });
  TryReadHead(s);
}

// Peeks (does not consume) what the client has sent so far and parses it as a request head.
// websocketpp reads the same bytes again once the connection is started. While the head is
// incomplete, SO_RCVLOWAT makes the socket readable only when more bytes than already seen have
// arrived (or at EOF), so a slow client costs no wakeups.
void Worker::TryReadHead(const SessionPtr& s) {
  tcp::socket& socket = s->client->get_raw_socket();
  boost::system::error_code ec;
  size_t n = socket.receive(boost::asio::buffer(head_buf_), tcp::socket::message_peek, ec);
  if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
    WeakSession weak = s;
    socket.async_wait(tcp::socket::wait_read, [this, weak](const boost::system::error_code& wec) {
      SessionPtr locked = weak.lock();
      if (!locked || locked->client_started) return;
      if (wec) {
        AbortBeforeStart(locked);
      } else {
        TryReadHead(locked);
      }
    });
    return;
  }
  // n == peeked: readable but nothing new, i.e. the client shut down mid-head.
  if (ec || n == 0 || n == s->peeked) {
    AbortBeforeStart(s);
    return;
  }
  s->peeked = n;
  HeadParseResult parsed = ParseRequestHead(std::string_view(head_buf_.data(), n));
  switch (parsed.status) {
    case HeadStatus::kIncomplete:
      if (!SetReceiveLowWatermark(socket, static_cast<int>(n + 1))) {
        AbortBeforeStart(s);
        return;
      }
      s->lowat_raised = true;
      {
        WeakSession weak = s;
        socket.async_wait(tcp::socket::wait_read,
                          [this, weak](const boost::system::error_code& wec) {
                            SessionPtr locked = weak.lock();
                            if (!locked || locked->client_started) return;
                            if (wec) {
                              AbortBeforeStart(locked);
                            } else {
                              TryReadHead(locked);
                            }
                          });
      }
      return;
    case HeadStatus::kTooLarge:
      RejectBeforeStart(s, 431, "Request Header Fields Too Large", "request head too large\n");
      return;
    case HeadStatus::kMalformed:
      // Not handed to websocketpp: its parser waits for a blank line that garbage never sends.
      RejectBeforeStart(s, 400, "Bad Request", "malformed request\n");
      return;
    case HeadStatus::kComplete:
      s->head_bytes = parsed.head_bytes;
      OnHead(s, parsed.head);
      return;
  }
}

bool Worker::RefuseHandshake(const SessionPtr& s, const RequestHead& head,
                             const char* missing_backend) {
  const char* body = !head.websocket_handshake_plausible ? "bad WebSocket handshake\n"
                     : closing_all_                      ? "server shutting down\n"
                                                         : missing_backend;
  if (body == nullptr) return false;
  // websocketpp answers a malformed handshake itself (400); OnValidate answers the 503s.
  s->plan = Session::Plan::kReject;
  s->reject_status = head.websocket_handshake_plausible ? 503 : 400;
  s->reject_body = body;
  StartClient(s);
  return true;
}

void Worker::OnHead(const SessionPtr& s, const RequestHead& head) {
  s->target = head.target;
  std::optional<RouteMatch> match;
  if (snapshot_) match = snapshot_->table.Match(head.target);
  if (match) {
    s->route = match->route;
    s->counters = &CountersFor(s->route.get());
  }

  if (!head.is_websocket_upgrade) {
    s->plan = Session::Plan::kHttp;
    StartClient(s);
    return;
  }
  if (!match) {
    s->plan = Session::Plan::kReject;
    s->reject_status = 404;
    s->reject_body = "no route for this path\n";
    StartClient(s);
    return;
  }
  RegisterSession(s, head, match->params);
  const RouteConfig& route = *s->route;
  if (head.websocket_handshake_plausible && !closing_all_ && RefuseByAdmission(s, *match)) return;
  switch (route.kind) {
    case RouteKind::kEcho:
      s->plan = Session::Plan::kEcho;
      StartClient(s);
      return;
    case RouteKind::kWebSocket:
      if (RefuseHandshake(s, head, nullptr)) return;
      s->plan = Session::Plan::kProxy;
      StartRelay(s, head);
      return;
    case RouteKind::kHttpBridge:
    case RouteKind::kExternalClient:
      if (RefuseHandshake(s, head, nullptr)) return;
      s->plan = Session::Plan::kKind;
      s->kind_traffic = std::make_shared<sessions::SessionTraffic>();
      s->kind = outbound_kinds_->Create(s->route, match->params, s->client, s->counters,
                                        s->kind_traffic);
      StartClient(s);
      return;
    case RouteKind::kRoom:
    case RouteKind::kPubSub: {
      if (RefuseHandshake(s, head, fanout_kinds_ ? nullptr : "no message bus\n")) return;
      // The channel is subscribed before the handshake is answered (so nothing published once
      // the client sees 101 is lost); like the upstream leg of kind `websocket`, the client leg
      // is started only when the answer is known.
      WeakSession weak = s;
      s->kind_traffic = std::make_shared<sessions::SessionTraffic>();
      fanout_kinds_->Prepare(
          s->route, match->params, head, s->client, s->counters,
          [this, weak](PrepareResult r) {
            SessionPtr locked = weak.lock();
            if (!locked || locked->client_started || locked->client_done) {
              if (r.session) r.session->OnTerminated();  // leave the channel again
              return;
            }
            if (r.session) {
              locked->plan = Session::Plan::kKind;
              locked->kind = std::move(r.session);
            } else {
              locked->plan = Session::Plan::kReject;
              locked->reject_status = r.status;
              locked->reject_body = std::move(r.body);
            }
            StartClient(locked);
          },
          s->kind_traffic);
      return;
    }
    default:
      s->plan = Session::Plan::kReject;
      s->reject_status = 501;
      s->reject_body = absl::StrCat("route kind '", RouteKindName(route.kind),
                                    "' is not implemented by this data plane\n");
      StartClient(s);
      return;
  }
}

void Worker::InstallClientHandlers(const SessionPtr& s) {
  WeakSession weak = s;
  ServerEndpoint::connection_type& c = *s->client;
  c.set_validate_handler([this, weak](websocketpp::connection_hdl) {
    SessionPtr locked = weak.lock();
    return locked ? OnValidate(locked) : false;
  });
  c.set_http_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnHttp(locked);
  });
  c.set_open_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnClientOpen(locked);
  });
  c.set_message_handler([this, weak](websocketpp::connection_hdl, MessagePtr msg) {
    if (SessionPtr locked = weak.lock()) OnClientMessage(locked, std::move(msg));
  });
  c.set_close_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnClientClose(locked);
  });
  c.set_fail_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnClientFail(locked);
  });
  // Called last for every started connection, whatever the outcome (HTTP included).
  c.set_termination_handler([this, weak](ServerConnectionPtr) {
    if (SessionPtr locked = weak.lock()) OnClientTerminated(locked);
  });
}

void Worker::StartClient(const SessionPtr& s) {
  s->timer.cancel();
  if (s->lowat_raised) {
    SetReceiveLowWatermark(s->client->get_raw_socket(), 1);
    s->lowat_raised = false;
  }
  if (s->route) s->client->set_max_message_size(s->route->limits.max_message_bytes);
  s->client_started = true;
  s->client->start();
}

void Worker::AbortBeforeStart(const SessionPtr& s) {
  s->timer.cancel();
  boost::system::error_code ec;
  s->client->get_raw_socket().close(ec);
  if (s->route && !s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kRejected);
    s->outcome_counted = true;
  }
  s->client_done = true;
  Finish(s);
}

// Answers a request websocketpp never sees, then drains what the client still sends until it
// closes (bounded by a deadline): closing with unread bytes would reset the connection and
// could destroy the response before the client reads it.
void Worker::RejectBeforeStart(const SessionPtr& s, int status, std::string_view phrase,
                               std::string_view body) {
  tcp::socket& socket = s->client->get_raw_socket();
  if (s->lowat_raised) {
    SetReceiveLowWatermark(socket, 1);
    s->lowat_raised = false;
  }
  s->raw_response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(phrase) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                    std::string(body);
  WeakSession weak = s;
  s->timer.expires_after(std::chrono::seconds(2));
  s->timer.async_wait([this, weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (SessionPtr locked = weak.lock()) AbortBeforeStart(locked);
  });
  boost::asio::async_write(socket, boost::asio::buffer(s->raw_response),
                           [this, weak](const boost::system::error_code& ec, size_t) {
                             SessionPtr locked = weak.lock();
                             if (!locked) return;
                             if (ec) {
                               AbortBeforeStart(locked);
                               return;
                             }
                             boost::system::error_code sec;
                             locked->client->get_raw_socket().shutdown(tcp::socket::shutdown_send,
                                                                       sec);
                             DrainBeforeClose(locked);
                           });
}

void Worker::DrainBeforeClose(const SessionPtr& s) {
  WeakSession weak = s;
  s->client->get_raw_socket().async_read_some(
      boost::asio::buffer(drain_buf_), [this, weak](const boost::system::error_code& ec, size_t) {
        SessionPtr locked = weak.lock();
        if (!locked) return;
        if (ec) {
          AbortBeforeStart(locked);  // EOF: the client has read the response and closed
        } else {
          DrainBeforeClose(locked);
        }
      });
}

void Worker::Finish(const SessionPtr& s) {
  if (!s->client_done) return;  // a relay's session: set when both of its legs are gone
  s->limits.ticket.reset();  // frees the admission place now, not when the last handler lets go
  if (sessions_.erase(s->id) == 0) return;
  if (!s->sid.empty()) {
    by_sid_.erase(s->sid);
    options_.session_ids->Release(s->sid);
  }
  live_connections_.store(static_cast<int64_t>(sessions_.size()), std::memory_order_relaxed);
  if (sessions_.empty() && on_drained_) on_drained_();
}

RouteWorkerCounters& Worker::CountersFor(const RouteConfig* route) {
  if (route == nullptr || route->stats == nullptr) return unrouted_counters_;
  return route->stats->ForWorker(index_);
}

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

RelayLimits RelayLimitsOf(const RouteLimits& l) {
  RelayLimits r;
  r.max_message_bytes = l.max_message_bytes;
  r.send_queue_bytes = l.send_queue_bytes;
  r.drop_oldest = l.slow_consumer == RouteLimits::SlowConsumer::kDropOldest;
  return r;
}

// The Host header for an upstream URL: the port only when it is not the default.
std::string HostHeader(const UpstreamUrl& target) {
  std::string host = target.host.find(':') != std::string::npos ? "[" + target.host + "]"
                                                                 : target.host;
  if (target.port != 80) host += ":" + std::to_string(target.port);
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
  if (target.url.rfind("wss://", 0) == 0) {
    // The relay speaks plain TCP only so far.
    spdlog::warn("route {}: wss:// upstreams are not supported yet ({})", route.name, target.url);
    StartClient(s);
    return;
  }

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

// ---------------------------------------------------------------------------------------------
// Issue 5 limits. Shared caps live in dataplane/limits/Admission (a mutex per handshake); the
// rest is per connection, on this thread: a token bucket per client message, a timestamp store
// per message, and one sweep timer per worker for the time-based limits.

void Worker::CountLimitHit(Session& s, std::string_view limit) {
  // The single place every refusal, drop and limit-driven close is counted and reported to
  // WatchSessions (an event only when somebody watches).
  s.counters->CountLimitHit(limits::LimitKindFromName(limit));
  EmitLimitHit(s, limit);
}

bool Worker::RefuseByAdmission(const SessionPtr& s, const RouteMatch& match) {
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
  if (s->kind) lim.tcp_bytes_sent = TcpBytesSent(s->client->get_raw_socket().native_handle());
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
      if (s->kind) lim.tcp_bytes_sent = TcpBytesSent(s->client->get_raw_socket().native_handle());
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
        const uint64_t sent = TcpBytesSent(s->client->get_raw_socket().native_handle());
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

// ---------------------------------------------------------------------------------------------
// Session registry (issue 5).

namespace {

std::string_view ParamValue(const std::vector<std::pair<std::string, std::string>>& params,
                            std::string_view name) {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return {};
}

// The first {name} of a channel template: the pubsub route's session parameter (the control
// plane builds the default templates from it).
std::string_view FirstTemplateParam(std::string_view tmpl) {
  size_t open = tmpl.find('{');
  if (open == std::string_view::npos) return {};
  size_t close = tmpl.find('}', open);
  if (close == std::string_view::npos) return {};
  return tmpl.substr(open + 1, close - open - 1);
}

}  // namespace

void Worker::RegisterSession(const SessionPtr& s, const RequestHead& head,
                             const std::vector<std::pair<std::string, std::string>>& params) {
  const RouteConfig& route = *s->route;
  std::string_view natural;
  switch (route.kind) {
    case RouteKind::kPubSub: {
      natural = ParamValue(params, FirstTemplateParam(route.pubsub.down_channel));
      s->bound_to = ExpandTemplate(route.pubsub.down_channel, params);
      if (!route.pubsub.up_channel.empty()) {
        s->bound_to += "," + ExpandTemplate(route.pubsub.up_channel, params);
      }
      break;
    }
    case RouteKind::kRoom:
      natural = ParamValue(params, route.room.client_id_param);
      // The channel name fanout_kinds.cc uses for the room.
      s->bound_to = "room:" + route.name + ":";
      if (!route.room.room_param.empty()) {
        s->bound_to += ParamValue(params, route.room.room_param);
      }
      break;
    case RouteKind::kExternalClient:
      natural = ParamValue(params, route.external_client.client_id_param);
      break;
    default:
      break;
  }
  s->sid = options_.session_ids->Claim(
      natural.empty() ? "s-" + std::to_string(index_) + "-" + std::to_string(next_generated_sid_++)
                      : std::string(natural));
  by_sid_[s->sid] = s.get();
  s->path = std::string(TargetPath(head.target));
  s->path_params = params;
  s->user_agent = head.Header("user-agent");
  s->connected_at = sessions::NowUnixNanos();
}

sessions::SessionState Worker::StateOf(const Session& s) const {
  if (s.client_done) return sessions::SessionState::kClosing;
  if (s.relay) {
    switch (s.relay->client_state()) {
      case ProxyRelay::State::kConnecting:
        return sessions::SessionState::kConnecting;
      case ProxyRelay::State::kOpen:
        return sessions::SessionState::kOpen;
      default:
        return sessions::SessionState::kClosing;
    }
  }
  if (s.client_open) {
    return s.client->get_state() == websocketpp::session::state::open
               ? sessions::SessionState::kOpen
               : sessions::SessionState::kClosing;
  }
  return s.open_seen ? sessions::SessionState::kClosing : sessions::SessionState::kConnecting;
}

sessions::SessionInfo Worker::DescribeSession(const Session& s) const {
  sessions::SessionInfo info;
  info.id = s.sid;
  info.route = s.route->name;
  info.kind = RouteKindName(s.route->kind);
  info.path = s.path;
  info.path_params = s.path_params;
  info.remote_address = s.client_ip;
  info.remote_port = s.client_port;
  info.user_agent = s.user_agent;
  if (s.plan == Session::Plan::kProxy) {
    info.subprotocol = s.upstream_subprotocol;
  } else if (s.open_seen) {
    info.subprotocol = s.client->get_subprotocol();
  }
  info.state = StateOf(s);
  info.connected_at = s.connected_at;
  info.last_activity = s.last_activity;
  info.messages_in = s.messages_in;
  info.bytes_in = s.bytes_in;
  info.messages_out = s.messages_out;
  info.bytes_out = s.bytes_out;
  if (s.kind_traffic) {
    info.messages_out += s.kind_traffic->messages_out;
    info.bytes_out += s.kind_traffic->bytes_out;
    info.last_activity = std::max(info.last_activity, s.kind_traffic->last_activity);
  }
  if (s.relay) {
    info.queued_bytes = s.relay->client_queued_bytes();
  } else if (s.client_started) {
    info.queued_bytes = s.client->get_buffered_amount();
  }
  info.bound_to = s.bound_to;
  // After a live update the session follows its route's new limits (ApplyLimitsToOpenSessions).
  info.limits = s.limits.config ? s.limits.config->limits : s.route->limits;
  info.worker = static_cast<uint32_t>(index_);
  return info;
}

Worker::Session* Worker::FindSession(const std::string& id) const {
  auto it = by_sid_.find(id);
  return it == by_sid_.end() ? nullptr : it->second;
}

void Worker::EmitSessionEvent(const Session& s, sessions::SessionEvent::Type type,
                              uint16_t close_code, std::string_view close_reason,
                              std::string_view limit) {
  sessions::SessionEventHub& hub = *options_.session_events;
  if (!hub.active() || s.sid.empty()) return;
  sessions::SessionEvent e;
  e.type = type;
  e.time = sessions::NowUnixNanos();
  e.session_id = s.sid;
  e.route = s.route->name;
  e.remote_address = s.client_ip;
  e.close_code = close_code;
  e.close_reason = std::string(close_reason);
  e.limit = std::string(limit);
  hub.Emit(e);
}

void Worker::PostQuerySessions(std::shared_ptr<const sessions::SessionQuery> query,
                               std::function<void(sessions::SessionPage)> done) {
  boost::asio::post(ioc_, [this, query = std::move(query), done = std::move(done)] {
    const sessions::SessionQuery& q = *query;
    sessions::SessionPage page;
    std::vector<const Session*> after;
    for (const auto& [sid, sp] : by_sid_) {
      const Session& s = *sp;
      if (!q.filter.Matches(s.sid, s.route->name, s.client_ip, StateOf(s))) continue;
      ++page.total;
      if (!q.after || sessions::After(*q.after, s.connected_at, s.sid)) after.push_back(&s);
    }
    auto earlier = [](const Session* a, const Session* b) {
      return sessions::Earlier(a->connected_at, a->sid, b->connected_at, b->sid);
    };
    const size_t n = std::min(after.size(), q.limit);
    std::partial_sort(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(n), after.end(),
                      earlier);
    page.more = after.size() > n;
    page.sessions.reserve(n);
    for (size_t i = 0; i < n; ++i) page.sessions.push_back(DescribeSession(*after[i]));
    done(std::move(page));
  });
}

void Worker::PostCountSessions(
    std::function<void(std::map<std::string, sessions::RouteSessionCounts>)> done) {
  boost::asio::post(ioc_, [this, done = std::move(done)] {
    std::map<std::string, sessions::RouteSessionCounts> out;
    for (const auto& [sid, sp] : by_sid_) {
      sessions::RouteSessionCounts& c = out[sp->route->name];
      switch (StateOf(*sp)) {
        case sessions::SessionState::kConnecting:
          ++c.connecting;
          break;
        case sessions::SessionState::kOpen:
          ++c.open;
          break;
        case sessions::SessionState::kClosing:
          ++c.closing;
          break;
      }
      if (sp->relay && sp->relay->upstream_open()) ++c.upstream_open;
    }
    done(std::move(out));
  });
}

void Worker::PostFindSession(std::string id,
                             std::function<void(std::optional<sessions::SessionInfo>)> done) {
  boost::asio::post(ioc_, [this, id = std::move(id), done = std::move(done)] {
    const Session* s = FindSession(id);
    done(s ? std::optional<sessions::SessionInfo>(DescribeSession(*s)) : std::nullopt);
  });
}

void Worker::PostCloseSession(std::string id, uint16_t code, std::string reason,
                              std::function<void(SessionOpResult)> done) {
  boost::asio::post(ioc_, [this, id = std::move(id), code, reason = std::move(reason),
                           done = std::move(done)] {
    Session* s = FindSession(id);
    if (s == nullptr) return done(SessionOpResult::kNotFound);
    if (StateOf(*s) != sessions::SessionState::kOpen) return done(SessionOpResult::kNotOpen);
    // Both legs at once, with the same code and reason: the upstream learns why (the client's
    // echo would carry the same code later anyway).
    SessionPtr keep = sessions_.at(s->id);  // closing may finish the session synchronously
    CloseUpstream(*keep, code, reason);
    CloseClient(*keep, code, reason);
    done(SessionOpResult::kDone);
  });
}

void Worker::PostSendToSession(std::string id, std::shared_ptr<const std::string> payload,
                               bool binary,
                               std::function<void(SessionOpResult)> done) {
  boost::asio::post(ioc_, [this, id = std::move(id), payload = std::move(payload), binary,
                           done = std::move(done)] {
    Session* s = FindSession(id);
    if (s == nullptr) return done(SessionOpResult::kNotFound);
    if (StateOf(*s) != sessions::SessionState::kOpen) return done(SessionOpResult::kNotOpen);
    if (s->relay) {
      if (!s->relay->SendToClient(*payload, binary)) return done(SessionOpResult::kNotOpen);
    } else {
      websocketpp::lib::error_code ec = s->client->send(
          *payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
      if (ec) return done(SessionOpResult::kNotOpen);
    }
    s->counters->CountMessage(Direction::kToClient, payload->size());
    ++s->messages_out;
    s->bytes_out += payload->size();
    s->last_activity = sessions::CoarseNowUnixNanos();
    done(SessionOpResult::kDone);
  });
}

}  // namespace wsgate::dataplane::transport
