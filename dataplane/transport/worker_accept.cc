// Accepting a connection, reading its request head and routing it; refusing and finishing
// connections before a kind takes them.
#include "dataplane/transport/worker_internal.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

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
    OnAcceptExhausted(ec);
    return;
  }
  accept_backoff_ = std::chrono::milliseconds(0);
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

  if (!options_.connection_cap->TryAcquire()) {
    // Answered before the head is read: an overloaded process spends nothing on parsing.
    CountRefusal(RefusalReason::kOverCapacity, s->client_ip);
    RejectBeforeStart(s, 503, "Service Unavailable", "too many connections (max_connections)\n",
                      "Retry-After: 1\r\n");
    return;
  }
  s->holds_cap_place = true;

  WeakSession weak = s;
  s->timer.expires_after(options_.head_timeout);
  s->timer.async_wait([this, weak](const boost::system::error_code& tec) {
    if (tec) return;
    if (SessionPtr locked = weak.lock(); locked && !locked->client_started) {
      CountRefusal(RefusalReason::kHeadTimeout, locked->client_ip);
      AbortBeforeStart(locked);
    }
  });
  TryReadHead(s);
}

void Worker::OnAcceptExhausted(const boost::system::error_code& ec) {
  const bool no_descriptors = ec.value() == EMFILE || ec.value() == ENFILE;
  uint64_t shed = 0;
  if (no_descriptors && spare_fd_ >= 0) {
    // The classic reserve: free one descriptor, take each waiting connection with it, tell it
    // why and close it, so that clients get an answer instead of hanging in the backlog.
    ::close(spare_fd_);
    spare_fd_ = -1;
    static constexpr char k503[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 25\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        "out of file descriptors\r\n";
    for (int i = 0; i < 64; ++i) {
      int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      // Read what the client has already sent before closing: a close() with unread bytes in
      // the receive queue makes the kernel answer with RST, which can destroy the 503 before
      // the client reads it (seen under ASan, where the request had always arrived by then).
      // Bounded, so that a client that keeps sending cannot hold the accept loop here.
      char discard[4096];
      for (int r = 0; r < 16 && ::recv(fd, discard, sizeof(discard), MSG_DONTWAIT) > 0; ++r) {
      }
      (void)::send(fd, k503, sizeof(k503) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
      ++shed;
      CountRefusal(RefusalReason::kDescriptorsExhausted, "");
    }
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  // Back off (1 ms doubling to 1 s, reset by the next successful accept) and warn at most once
  // every 10 s, with the count of failures in between.
  accept_backoff_ = std::clamp(accept_backoff_ * 2, std::chrono::milliseconds(1),
                               std::chrono::milliseconds(1000));
  ++accept_failures_;
  const int64_t now = LimitsNowMs();
  if (accept_warned_ms_ == 0 || now - accept_warned_ms_ >= 10000) {
    spdlog::warn("worker {}: accept failed {} time(s) since the last warning: {}; shed {} waiting "
                 "connection(s) with 503; retrying in {} ms",
                 index_, accept_failures_, ec.message(), shed, accept_backoff_.count());
    accept_warned_ms_ = now;
    accept_failures_ = 0;
  }
  accept_retry_timer_.expires_after(accept_backoff_);
  accept_retry_timer_.async_wait([this](const boost::system::error_code& tec) {
    if (!tec) Accept();
  });
}

void Worker::CountRefusal(RefusalReason reason, const std::string& client_ip) {
  refusals_->Count(index_, reason);
  RefusalLogState& log = refusal_log_[static_cast<int>(reason)];
  const int64_t now = LimitsNowMs();
  if (log.logged_ms != 0 && now - log.logged_ms < 10000) {
    ++log.suppressed;
    return;
  }
  spdlog::info("worker {}: refused a connection ({}) from {}{}", index_, RefusalReasonLabel(reason),
               client_ip.empty() ? "an unknown address" : client_ip,
               log.suppressed == 0
                   ? std::string()
                   : absl::StrCat(" and ", log.suppressed, " more for this reason in the last ",
                                  (now - log.logged_ms) / 1000, " s"));
  log.logged_ms = now;
  log.suppressed = 0;
}

void Worker::WaitForMoreHead(const SessionPtr& s) {
  WeakSession weak = s;
  s->client->get_raw_socket().async_wait(
      tcp::socket::wait_read, [this, weak](const boost::system::error_code& ec) {
        SessionPtr locked = weak.lock();
        if (!locked || locked->client_started) return;
        if (ec) {
          AbortBeforeStart(locked);
        } else {
          TryReadHead(locked);
        }
      });
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
    WaitForMoreHead(s);
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
      WaitForMoreHead(s);
      return;
    case HeadStatus::kTooLarge:
      CountRefusal(RefusalReason::kHeadTooLarge, s->client_ip);
      RejectBeforeStart(s, 431, "Request Header Fields Too Large", "request head too large\n");
      return;
    case HeadStatus::kMalformed:
      // Not handed to websocketpp: its parser waits for a blank line that garbage never sends.
      CountRefusal(RefusalReason::kMalformed, s->client_ip);
      RejectBeforeStart(s, 400, "Bad Request", "malformed request\n");
      return;
    case HeadStatus::kComplete:
      s->head_bytes = parsed.head_bytes;
      OnHead(s, parsed.head);
      return;
  }
}

bool Worker::RefuseHandshake(const SessionPtr& s, const char* missing_backend) {
  const char* body = closing_all_ ? "server shutting down\n" : missing_backend;
  if (body == nullptr) return false;
  if (closing_all_) CountRefusal(RefusalReason::kShuttingDown, s->client_ip);
  // OnValidate answers the 503.
  s->plan = Session::Plan::kReject;
  s->reject_status = 503;
  s->reject_body = body;
  StartClient(s);
  return true;
}

void Worker::RefuseBadHandshake(const SessionPtr& s, RequestHead::HandshakeProblem problem) {
  using Problem = RequestHead::HandshakeProblem;
  // RFC 6455 section 4.4: tell the client which version this server speaks.
  static constexpr std::string_view kVersionHeader = "Sec-WebSocket-Version: 13\r\n";
  switch (problem) {
    case Problem::kNoVersion:
      CountRefusal(RefusalReason::kBadVersion, s->client_ip);
      RejectBeforeStart(s, 400, "Bad Request",
                        "missing Sec-WebSocket-Version (this server speaks version 13)\n",
                        kVersionHeader);
      return;
    case Problem::kBadVersion:
      CountRefusal(RefusalReason::kBadVersion, s->client_ip);
      RejectBeforeStart(s, 426, "Upgrade Required",
                        "unsupported Sec-WebSocket-Version (this server speaks version 13)\n",
                        kVersionHeader);
      return;
    case Problem::kBadKey:
    case Problem::kNone:
      CountRefusal(RefusalReason::kBadKey, s->client_ip);
      RejectBeforeStart(s, 400, "Bad Request",
                        "Sec-WebSocket-Key missing or not the base64 of 16 bytes\n");
      return;
  }
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
    CountRefusal(RefusalReason::kNoRoute, s->client_ip);
    s->plan = Session::Plan::kReject;
    s->reject_status = 404;
    s->reject_body = "no route for this path\n";
    StartClient(s);
    return;
  }
  RegisterSession(s, head, match->params);
  const RouteConfig& route = *s->route;
  // Admission runs on every handshake, whatever its version: an old draft must not be a way
  // around the connection caps and the handshake rate.
  if (!closing_all_ && RefuseByAdmission(s, *match, head.websocket_handshake_plausible)) return;
  if (head.handshake_problem != RequestHead::HandshakeProblem::kNone) {
    RefuseBadHandshake(s, head.handshake_problem);
    return;
  }
  switch (route.kind) {
    case RouteKind::kEcho:
      s->plan = Session::Plan::kEcho;
      StartClient(s);
      return;
    case RouteKind::kWebSocket:
      if (RefuseHandshake(s, nullptr)) return;
      s->plan = Session::Plan::kProxy;
      StartRelay(s, head);
      return;
    case RouteKind::kHttpBridge:
    case RouteKind::kExternalClient:
      if (RefuseHandshake(s, nullptr)) return;
      s->plan = Session::Plan::kKind;
      s->kind_traffic = std::make_shared<sessions::SessionTraffic>();
      s->kind = outbound_kinds_->Create(s->route, match->params, s->client, s->counters,
                                        s->kind_traffic);
      StartClient(s);
      return;
    case RouteKind::kRoom:
    case RouteKind::kPubSub: {
      if (RefuseHandshake(s, fanout_kinds_ ? nullptr : "no message bus\n")) return;
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
                               std::string_view body, std::string_view extra_headers) {
  tcp::socket& socket = s->client->get_raw_socket();
  if (s->lowat_raised) {
    SetReceiveLowWatermark(socket, 1);
    s->lowat_raised = false;
  }
  s->raw_response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(phrase) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n" + std::string(extra_headers) +
                    "Connection: close\r\n\r\n" + std::string(body);
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
  if (s->holds_cap_place) {
    options_.connection_cap->Release();
    s->holds_cap_place = false;
  }
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

}  // namespace wsgate::dataplane::transport
