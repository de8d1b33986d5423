#include "dataplane/transport/worker.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <exception>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/transport/http_response.h"
#include "dataplane/transport/fanout_kinds.h"
#include "dataplane/transport/outbound_kinds.h"

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

// Whether `code` may be put in a close frame (RFC 6455 section 7.4): 1005, 1006, 1015 and the
// reserved ranges may not.
bool SendableCloseCode(wsclose::value code) {
  return !wsclose::invalid(code) && !wsclose::reserved(code);
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

constexpr std::chrono::milliseconds kFirstDrainPoll{1};
constexpr std::chrono::milliseconds kMaxDrainPoll{32};

}  // namespace

// One client connection and, for proxied routes, its upstream leg. Owned by the worker's session
// map; websocketpp callbacks hold only weak references, so a callback that arrives after the
// session is gone does nothing.
struct Worker::Session {
  explicit Session(boost::asio::io_context& ioc) : timer(ioc) {}

  enum class Plan { kUndecided, kHttp, kReject, kEcho, kProxy, kKind };
  enum class Upstream { kNone, kConnecting, kOpen, kFailed, kTimedOut, kClosed };

  uint64_t id = 0;
  ServerConnectionPtr client;
  ClientConnectionPtr upstream;
  // Head deadline while the request head is read, then the upstream connect deadline.
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
  bool lowat_raised = false;
  std::string raw_response;  // a response written before websocketpp takes over
  bool client_started = false;
  bool client_open = false;
  bool client_done = false;
  bool outcome_counted = false;

  Upstream up = Upstream::kNone;
  bool upstream_done = true;  // true while there is no upstream leg
  std::chrono::steady_clock::time_point upstream_started;
  std::string upstream_subprotocol;
  // Upstream messages that arrive between the upstream's open and the client's (one handshake
  // round trip on the client side).
  // A vector, not a deque: libstdc++'s deque allocates 576 bytes as soon as it is constructed.
  std::vector<MessagePtr> to_client;
  size_t to_client_bytes = 0;
  // The upstream closed before the client leg opened: close the client right after it opens.
  bool close_client_after_open = false;
  wsclose::value deferred_close_code = wsclose::internal_endpoint_error;
  std::string deferred_close_reason;

  // Backpressure: the worker stopped reading this leg because what it reads has nowhere to go
  // (the other leg's send queue, or the client's own for echo, is above the bound). websocketpp
  // has no hook for "queue drained", so `timer` polls while a leg is paused, backing off from
  // kFirstDrainPoll to kMaxDrainPoll.
  bool client_paused = false;
  bool upstream_paused = false;
  bool drain_poll_armed = false;
  std::chrono::milliseconds drain_poll_interval{0};
};

Worker::Worker(int index, SnapshotPtr initial, common::HealthState* health, WorkerOptions options,
               std::function<void()> on_drained)
    : index_(index),
      options_(options),
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
      if (!s->client_started) {
        // Still reading the head: drop it. With the upstream leg connecting, the client's
        // handshake is answered 503 by OnValidate once the upstream settles.
        if (s->up == Session::Upstream::kNone) AbortBeforeStart(s);
        continue;
      }
      if (s->client_open) CloseClient(*s, code, reason);
      if (s->up == Session::Upstream::kOpen) CloseUpstream(*s, 1001, "server shutting down");
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
  acceptor_.async_accept(con->get_raw_socket(),
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
  auto remote = socket.remote_endpoint(sec);
  if (!sec) s->client_ip = remote.address().to_string();
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
  const RouteConfig& route = *s->route;
  switch (route.kind) {
    case RouteKind::kEcho:
      s->plan = Session::Plan::kEcho;
      StartClient(s);
      return;
    case RouteKind::kWebSocket:
      if (RefuseHandshake(s, head, nullptr)) return;
      s->plan = Session::Plan::kProxy;
      StartUpstream(s, head);
      return;
    case RouteKind::kHttpBridge:
    case RouteKind::kExternalClient:
      if (RefuseHandshake(s, head, nullptr)) return;
      s->plan = Session::Plan::kKind;
      s->kind = outbound_kinds_->Create(s->route, match->params, s->client, s->counters);
      StartClient(s);
      return;
    case RouteKind::kRoom:
    case RouteKind::kPubSub: {
      if (RefuseHandshake(s, head, fanout_kinds_ ? nullptr : "no message bus\n")) return;
      // The channel is subscribed before the handshake is answered (so nothing published once
      // the client sees 101 is lost); like the upstream leg of kind `websocket`, the client leg
      // is started only when the answer is known.
      WeakSession weak = s;
      fanout_kinds_->Prepare(
          s->route, match->params, head, s->client, s->counters, [this, weak](PrepareResult r) {
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
          });
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
  if (!s->client_done || !s->upstream_done) return;
  if (sessions_.erase(s->id) == 0) return;
  live_connections_.store(static_cast<int64_t>(sessions_.size()), std::memory_order_relaxed);
  if (sessions_.empty() && on_drained_) on_drained_();
}

RouteWorkerCounters& Worker::CountersFor(const RouteConfig* route) {
  if (route == nullptr || route->stats == nullptr) return unrouted_counters_;
  return route->stats->ForWorker(index_);
}

// ---------------------------------------------------------------------------------------------
// The upstream leg.

void Worker::StartUpstream(const SessionPtr& s, const RequestHead& head) {
  const RouteConfig& route = *s->route;
  const WebSocketProxySettings& ws = route.websocket;
  if (ws.upstreams.empty()) {
    s->up = Session::Upstream::kFailed;
    StartClient(s);
    return;
  }
  uint32_t& next = next_upstream_[route.name];
  const UpstreamUrl& target = ws.upstreams[next++ % ws.upstreams.size()];

  websocketpp::lib::error_code ec;
  ClientConnectionPtr up = client_.get_connection(target.url, ec);
  if (ec || !up) {
    spdlog::warn("route {}: cannot use upstream {}: {}", route.name, target.url, ec.message());
    s->up = Session::Upstream::kFailed;
    StartClient(s);
    return;
  }
  try {
    for (const std::string& protocol : head.subprotocols) {
      websocketpp::lib::error_code pec;
      up->add_subprotocol(protocol, pec);  // an offer websocketpp refuses is not forwarded
    }
    for (const std::string& name : ws.forward_headers) {
      if (IsHopByHopOrHandshakeHeader(name) || !head.HasHeader(name)) continue;
      up->replace_header(name, head.Header(name));
    }
    for (const auto& [name, value] : ws.set_headers) up->replace_header(name, value);
    // Like nginx's $proxy_add_x_forwarded_for.
    std::string xff = head.Header("x-forwarded-for");
    up->replace_header("X-Forwarded-For", xff.empty() ? s->client_ip : xff + ", " + s->client_ip);
  } catch (const std::exception& e) {
    // websocketpp throws on a header name it cannot send; the route config is at fault.
    spdlog::warn("route {}: cannot build the upstream handshake: {}", route.name, e.what());
    s->up = Session::Upstream::kFailed;
    StartClient(s);
    return;
  }
  up->set_max_message_size(route.limits.max_message_bytes);
  // Our own timer below is the deadline; websocketpp's is only a backstop.
  up->set_open_handshake_timeout(static_cast<long>(ws.connect_timeout.count()) + 1000);

  WeakSession weak = s;
  up->set_open_handler([this, weak](websocketpp::connection_hdl hdl) {
    if (SessionPtr locked = weak.lock()) {
      OnUpstreamOpen(locked);
      return;
    }
    // The client is gone: this leg has no one to talk to.
    websocketpp::lib::error_code cec;
    if (auto con = client_.get_con_from_hdl(hdl, cec)) con->close(1001, "client went away", cec);
  });
  up->set_fail_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnUpstreamFail(locked);
  });
  up->set_message_handler([this, weak](websocketpp::connection_hdl, MessagePtr msg) {
    if (SessionPtr locked = weak.lock()) OnUpstreamMessage(locked, std::move(msg));
  });
  up->set_close_handler([this, weak](websocketpp::connection_hdl) {
    if (SessionPtr locked = weak.lock()) OnUpstreamClose(locked);
  });

  s->upstream = up;
  s->up = Session::Upstream::kConnecting;
  s->upstream_done = false;
  s->upstream_started = std::chrono::steady_clock::now();
  s->timer.expires_after(ws.connect_timeout);
  s->timer.async_wait([this, weak](const boost::system::error_code& tec) {
    if (tec) return;
    if (SessionPtr locked = weak.lock()) OnUpstreamTimeout(locked);
  });
  // A literal address needs no resolver: connect the leg's socket ourselves and start it, which
  // is what websocketpp's endpoint does after resolving. Its resolver runs getaddrinfo on a
  // helper thread for every connection (a netlink socket, three futex hand-offs: 11 of the 45
  // system calls of a proxied handshake); host names still take that path.
  boost::system::error_code aec;
  boost::asio::ip::address address = boost::asio::ip::make_address(target.host, aec);
  if (aec) {
    client_.connect(up);
    return;
  }
  up->get_raw_socket().async_connect(
      tcp::endpoint(address, target.port), [up](const boost::system::error_code& cec) {
        // Aborted: OnUpstreamTimeout cancelled the connect and has already terminated the leg.
        if (cec == boost::asio::error::operation_aborted) return;
        if (cec) {
          // Like websocketpp's endpoint::handle_connect: the fail handler reports it (502).
          up->terminate(websocketpp::transport::asio::error::make_error_code(
              websocketpp::transport::asio::error::pass_through));
          return;
        }
        up->start();
      });
}

void Worker::OnUpstreamTimeout(const SessionPtr& s) {
  if (s->up != Session::Upstream::kConnecting) return;
  s->up = Session::Upstream::kTimedOut;
  // terminate() runs the fail handler (OnUpstreamFail) before it returns or soon after; cancel
  // aborts a TCP connect still in flight.
  boost::system::error_code ec;
  s->upstream->get_raw_socket().cancel(ec);
  s->upstream->terminate(
      websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout));
  StartClient(s);
}

void Worker::OnUpstreamOpen(const SessionPtr& s) {
  if (s->up != Session::Upstream::kConnecting) {
    CloseUpstream(*s, 1001, "client went away");
    return;
  }
  s->timer.cancel();
  s->up = Session::Upstream::kOpen;
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - s->upstream_started;
  s->counters->ObserveUpstreamConnect(took.count());
  boost::system::error_code ec;
  s->upstream->get_raw_socket().set_option(tcp::no_delay(true), ec);
  // websocketpp's client does not record the server's choice (get_subprotocol() stays empty).
  s->upstream_subprotocol = s->upstream->get_response_header("Sec-WebSocket-Protocol");
  ReleaseHandshake(*s->upstream);
  // Upstream messages that arrive before the client's handshake completes wait in `to_client`.
  // Not pause_reading(): websocketpp 0.8.2 applies it through a post, after the open handler has
  // already queued the next read, and resume_reading() would then start a second concurrent
  // read on the same socket and buffer.
  StartClient(s);
}

void Worker::OnUpstreamFail(const SessionPtr& s) {
  s->upstream_done = true;
  if (s->up == Session::Upstream::kConnecting) {
    websocketpp::lib::error_code ec = s->upstream->get_ec();
    bool timeout =
        ec == websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout) ||
        ec ==
            websocketpp::transport::error::make_error_code(websocketpp::transport::error::timeout);
    s->up = timeout ? Session::Upstream::kTimedOut : Session::Upstream::kFailed;
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("route {}: upstream handshake failed: {} (HTTP {})", s->route->name,
                    ec.message(), static_cast<int>(s->upstream->get_response_code()));
    }
    StartClient(s);
  }
  Finish(s);
}

void Worker::OnUpstreamMessage(const SessionPtr& s, MessagePtr msg) {
  if (s->client_open) {
    s->counters->CountMessage(Direction::kToClient, msg->get_payload().size());
    s->client->send(msg);  // an error means the client leg is closing: the message is dropped
    // Issue 5's slow-consumer policies (close, drop) will branch here; for now: pause.
    if (s->client->get_buffered_amount() > options_.send_queue_bytes) PauseUpstreamReading(s);
    return;
  }
  if (!s->client_done) {
    s->to_client_bytes += msg->get_payload().size();
    s->to_client.push_back(std::move(msg));
    if (s->to_client_bytes > options_.send_queue_bytes) PauseUpstreamReading(s);
  }
}

void Worker::PauseUpstreamReading(const SessionPtr& s) {
  if (s->upstream_paused) return;
  PauseReadingInMessageHandler(*s->upstream);
  s->upstream_paused = true;
  PollUntilDrained(s);
}

void Worker::PauseClientReading(const SessionPtr& s) {
  if (s->client_paused) return;
  PauseReadingInMessageHandler(*s->client);
  s->client_paused = true;
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
  if (s->upstream_paused) {
    // Waits for the client leg: its open (and the flush of `to_client`), then its queue.
    bool ready = s->client_done || (s->client_open && s->client->get_buffered_amount() <= low);
    if (ready) {
      s->upstream_paused = false;
      ResumeReading(*s->upstream);
    }
  }
  if (s->client_paused) {
    bool ready;
    if (s->plan == Session::Plan::kEcho) {
      ready = s->client->get_buffered_amount() <= low;
    } else {
      ready = s->up != Session::Upstream::kOpen || s->upstream->get_buffered_amount() <= low;
    }
    if (ready) {
      s->client_paused = false;
      ResumeReading(*s->client);
    }
  }
  if (!s->upstream_paused && !s->client_paused) {
    s->drain_poll_interval = std::chrono::milliseconds(0);
    return;
  }
  s->drain_poll_interval = std::min(s->drain_poll_interval * 2, kMaxDrainPoll);
  ArmDrainPoll(s);
}

void Worker::OnUpstreamClose(const SessionPtr& s) {
  s->up = Session::Upstream::kClosed;
  s->upstream_done = true;
  wsclose::value code = s->upstream->get_remote_close_code();
  std::string reason = s->upstream->get_remote_close_reason();
  if (code == wsclose::no_status) {
    code = wsclose::blank;  // the upstream sent an empty close frame: so do we
  } else if (!SendableCloseCode(code)) {
    code = wsclose::internal_endpoint_error;
    reason = "upstream went away";
  }
  if (s->client_open) {
    CloseClient(*s, code, reason);
  } else if (!s->client_done) {
    s->close_client_after_open = true;
    s->deferred_close_code = code;
    s->deferred_close_reason = reason;
  }
  Finish(s);
}

// ---------------------------------------------------------------------------------------------
// The client leg.

bool Worker::OnValidate(const SessionPtr& s) {
  auto reject = [&](int status, const std::string& body, ConnectionOutcome outcome) {
    RespondHttp(*s->client, status, body);
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
      switch (s->up) {
        case Session::Upstream::kOpen:
        case Session::Upstream::kClosed:
          if (!s->upstream_subprotocol.empty()) {
            websocketpp::lib::error_code ec;
            s->client->select_subprotocol(s->upstream_subprotocol, ec);
            if (ec) {
              return reject(502, "upstream selected a subprotocol the client did not offer\n",
                            ConnectionOutcome::kUpstreamError);
            }
          }
          return true;
        case Session::Upstream::kTimedOut:
          return reject(504, "upstream timed out\n", ConnectionOutcome::kUpstreamTimeout);
        default:
          return reject(502, "upstream unavailable\n", ConnectionOutcome::kUpstreamError);
      }
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
    if (fanout_kinds_ && fanout_kinds_->bus_down()) {
      // Seed 004: unhealthy while the configured Redis is unreachable.
      RespondHttp(c, 503, "{\"status\":\"unhealthy\",\"redis\":\"down\"}", "application/json");
      return;
    }
    RespondHttp(c, 200, "{\"status\":\"healthy\"}", "application/json");
    return;
  }
  if (fanout_kinds_ && fanout_kinds_->HandleHttp(s->client, path, s->route == nullptr, snapshot_)) {
    return;
  }
  if (outbound_kinds_->HandleHttp(s->client, path, snapshot_)) return;
  if (path == "/ready") {
    if (health_ != nullptr && health_->ready()) {
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
  boost::system::error_code ec;
  s->client->get_raw_socket().set_option(tcp::no_delay(true), ec);
  s->counters->connections_active.Add(1);
  if (!s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kAccepted);
    s->outcome_counted = true;
  }
  if (s->kind) {
    s->kind->OnOpen();
    return;
  }
  ReleaseHandshake(*s->client);
  if (s->plan != Session::Plan::kProxy) return;
  for (MessagePtr& msg : s->to_client) {
    s->counters->CountMessage(Direction::kToClient, msg->get_payload().size());
    s->client->send(msg);
  }
  std::vector<MessagePtr>().swap(s->to_client);
  s->to_client_bytes = 0;
  if (s->close_client_after_open) {
    CloseClient(*s, s->deferred_close_code, s->deferred_close_reason);
  }
}

void Worker::OnClientMessage(const SessionPtr& s, MessagePtr msg) {
  const size_t size = msg->get_payload().size();
  s->counters->CountMessage(Direction::kFromClient, size);
  if (s->kind) {
    s->kind->OnMessage(msg);
    return;
  }
  if (s->plan == Session::Plan::kEcho) {
    s->counters->CountMessage(Direction::kToClient, size);
    s->client->send(msg);
    // A client that sends faster than it reads is its own slow consumer.
    if (s->client->get_buffered_amount() > options_.send_queue_bytes) PauseClientReading(s);
    return;
  }
  if (s->up == Session::Upstream::kOpen) {
    s->upstream->send(msg);
    if (s->upstream->get_buffered_amount() > options_.send_queue_bytes) PauseClientReading(s);
  }
  // Otherwise the upstream leg is gone and the message is dropped.
}

void Worker::OnClientClose(const SessionPtr& s) {
  s->client_open = false;
  s->counters->connections_active.Add(-1);
  s->counters->CountClose(s->client->get_local_close_code());
  if (s->up != Session::Upstream::kOpen) return;
  wsclose::value code = s->client->get_remote_close_code();
  std::string reason = s->client->get_remote_close_reason();
  if (code == wsclose::no_status) {
    code = wsclose::blank;
  } else if (!SendableCloseCode(code)) {
    code = wsclose::going_away;
    reason = "client went away";
  }
  CloseUpstream(*s, code, reason);
}

void Worker::OnClientFail(const SessionPtr& s) {
  if (s->route && !s->outcome_counted) {
    s->counters->CountOutcome(ConnectionOutcome::kRejected);
    s->outcome_counted = true;
  }
  if (s->up == Session::Upstream::kOpen) CloseUpstream(*s, 1001, "client went away");
}

void Worker::OnClientTerminated(const SessionPtr& s) {
  if (s->kind) s->kind->OnTerminated();
  s->client_open = false;
  s->client_done = true;
  s->to_client.clear();
  Finish(s);
}

void Worker::CloseClient(Session& s, uint16_t code, const std::string& reason) {
  if (s.client_paused) {
    // The close handshake needs the client's answer.
    s.client_paused = false;
    ResumeReading(*s.client);
  }
  websocketpp::lib::error_code ec;  // invalid_state: already closing, nothing to do
  s.client->close(static_cast<wsclose::value>(code), code == wsclose::blank ? "" : reason, ec);
}

void Worker::CloseUpstream(Session& s, uint16_t code, const std::string& reason) {
  if (!s.upstream) return;
  if (s.upstream_paused) {
    s.upstream_paused = false;
    ResumeReading(*s.upstream);
  }
  websocketpp::lib::error_code ec;
  s.upstream->close(static_cast<wsclose::value>(code), code == wsclose::blank ? "" : reason, ec);
}

}  // namespace wsgate::dataplane::transport
