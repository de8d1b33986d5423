// The relay's handshake phase: taking the client's head, connecting the upstream (each resolved
// address in turn), sending the upstream handshake, checking its 101 and answering the client's
// handshake, or refusing it (502/503/504). The data path is proxy_relay.cc.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "dataplane/codec/ws_handshake.h"
#include "dataplane/kinds/websocket/proxy_relay.h"

namespace wsgate::dataplane::transport {

using boost::asio::ip::tcp;

namespace {

// How long a refused client may keep sending before it is closed on.
constexpr std::chrono::seconds kRefusedDrain{2};

const char* ReasonPhrase(int status) {
  switch (status) {
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Set-up: the client's head, the upstream's handshake.

void ProxyRelay::Start(ClientSide client, UpstreamSide upstream, RelayLimits limits) {
  limits_ = limits;
  client_side_ = std::move(client);
  expected_accept_ = std::move(upstream.expected_accept);
  upstream_secure_ = upstream.secure;
  upstream_tls_ = std::move(upstream.tls);
  tls_name_ = upstream.server_name.empty() ? upstream.host : std::move(upstream.server_name);
  // Every recv() and send() here passes MSG_DONTWAIT: no FIONBIO needed on either socket.
  if (!RegisterClient()) {
    ClientGoneBeforeAnswer();
    return;
  }
  ConsumeHead();
  if (client_.done) return;
  connect_started_ = std::chrono::steady_clock::now();
  timer_.expires_after(upstream.connect_timeout);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& tec) {
    if (!tec) self->Refuse(504, "upstream timed out\n");
  });
  upstream_.out = std::move(upstream.request);
  ConnectUpstream(upstream);
}

// The worker peeked the head (it is still in the socket); take it out so that the first byte
// read later is the client's first frame. The bytes are there, so recv() does not block.
void ProxyRelay::ConsumeHead() {
  size_t left = client_side_.head_bytes;
  while (left > 0) {
    ssize_t n = ::recv(client_.fd, ctx_.scratch.data(),
                       std::min(left, ctx_.scratch.size()), MSG_DONTWAIT);
    if (n > 0) {
      left -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    ClientGoneBeforeAnswer();
    return;
  }
}

// The client's socket failed before anything was sent upstream: end without an answer.
void ProxyRelay::ClientGoneBeforeAnswer() {
  refused_ = true;
  host_->OnRefused(0);
  CloseSocket(client_);
  upstream_.done = true;
  MaybeDone();
}

void ProxyRelay::ConnectUpstream(const UpstreamSide& up) {
  boost::system::error_code aec;
  boost::asio::ip::address address = boost::asio::ip::make_address(up.host, aec);
  if (!aec) {
    upstream_endpoints_.emplace_back(address, up.port);
    ConnectTo(0);
    return;
  }
  // A host name: Asio's resolver (getaddrinfo on its helper thread), then the first address
  // that connects.
  resolver_ = std::make_unique<tcp::resolver>(ctx_.ioc);
  resolver_->async_resolve(
      up.host, std::to_string(up.port),
      [self = shared_from_this()](const boost::system::error_code& ec,
                                  const tcp::resolver::results_type& results) {
        if (self->refused_ || self->opened_ || self->client_.done) return;
        if (ec) {
          spdlog::debug("upstream name not resolved: {}", ec.message());
          self->Refuse(502, "upstream unavailable\n");
          return;
        }
        for (const auto& entry : results) self->upstream_endpoints_.push_back(entry.endpoint());
        self->ConnectTo(0);
      });
}

// A non-blocking connect of our own, registered with the poller right away (its EPOLLOUT edge
// says the connect finished): five system calls, where Asio's connect and handing the socket
// over cost ten.
void ProxyRelay::ConnectTo(size_t index) {
  Leg& up = upstream_;
  if (up.poll_id != 0) ctx_.poller.Remove(up.poll_id);
  if (up.ssl != nullptr) EndTls(up, /*notify=*/false);
  if (up.fd >= 0) ::close(up.fd);
  up.poll_id = 0;
  up.fd = -1;
  if (index >= upstream_endpoints_.size()) {
    Refuse(502, "upstream unavailable\n");
    return;
  }
  next_endpoint_ = index + 1;
  const tcp::endpoint& ep = upstream_endpoints_[index];
  up.fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   IPPROTO_TCP);
  if (up.fd < 0) {
    spdlog::warn("cannot open a socket for an upstream: {}", std::strerror(errno));
    Refuse(502, "upstream unavailable\n");
    return;
  }
  int one = 1;
  ::setsockopt(up.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(up.fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0 &&
      errno != EINPROGRESS) {
    ConnectTo(next_endpoint_);
    return;
  }
  up.connecting = true;
  up.poll_id = ctx_.poller.Add(up.fd, &up);
  if (up.poll_id == 0) ConnectTo(upstream_endpoints_.size());  // i.e. 502
}

void ProxyRelay::OnUpstreamConnected() {
  upstream_.connecting = false;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(upstream_.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    spdlog::debug("upstream connect failed: {}", std::strerror(err));
    ConnectTo(next_endpoint_);
    return;
  }
  if (upstream_secure_) {
    StartUpstreamTls();  // then the handshake request, once TLS is up
    return;
  }
  Flush(upstream_);  // the handshake request; the answer comes as an event
}

void ProxyRelay::OnUpstreamAnswer() {
  relay::UpstreamResponse r = relay::ParseUpstreamResponse(answer_, expected_accept_);
  switch (r.answer) {
    case relay::UpstreamAnswer::kIncomplete:
      return;
    case relay::UpstreamAnswer::kAccepted:
      if (!r.subprotocol.empty() &&
          std::find(client_side_.subprotocols.begin(), client_side_.subprotocols.end(),
                    r.subprotocol) == client_side_.subprotocols.end()) {
        Refuse(502, "upstream selected a subprotocol the client did not offer\n");
        return;
      }
      subprotocol_ = std::move(r.subprotocol);
      OpenRelay(r.head_bytes);
      return;
    default:
      spdlog::debug("upstream refused the WebSocket handshake: HTTP {} {}", r.status, r.error);
      Refuse(502, "upstream unavailable\n");
      return;
  }
}

void ProxyRelay::OpenRelay(size_t answer_head_bytes) {
  opened_ = true;
  timer_.cancel();
  client_.out += relay::BuildSwitchingProtocols(client_side_.accept, subprotocol_);
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - connect_started_;
  host_->OnOpen(subprotocol_, took.count());
  // Frames the upstream sent right behind its 101 (a greeting, even a close) go first.
  std::string early = answer_.substr(answer_head_bytes);
  std::string().swap(answer_);
  std::vector<std::string>().swap(client_side_.subprotocols);
  if (!early.empty()) Process(upstream_, early.data(), early.size());
  AfterInput(upstream_);
  // Whatever the client sent after its head is waiting with no wakeup to come: read now.
  PostRead(client_);
}

bool ProxyRelay::Refuse(int status, std::string_view body) {
  if (opened_ || refused_) return false;
  auto keep = shared_from_this();
  refused_ = true;
  timer_.cancel();
  if (resolver_) resolver_->cancel();
  CloseSocket(upstream_);
  host_->OnRefused(status);
  WriteHttpAndClose(status, body);
  return true;
}

// Answers the handshake with an HTTP error, then reads (and discards) what the client still
// sends until it closes: closing with unread bytes would reset the connection and could destroy
// the answer before the client reads it. Bounded by kRefusedDrain.
void ProxyRelay::WriteHttpAndClose(int status, std::string_view body) {
  if (client_.done) return;
  draining_ = true;
  client_.out = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) +
                "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
  timer_.expires_after(kRefusedDrain);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->CloseSocket(self->client_);
  });
  Flush(client_);
}

}  // namespace wsgate::dataplane::transport
