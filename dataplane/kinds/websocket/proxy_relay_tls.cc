// The relay's TLS leg, for wss:// upstreams: SSL_read()/SSL_write() on the leg's non-blocking
// socket, behind the same contract as plain recv()/send() (Leg::recv_some / send_some), so the
// data path (proxy_relay.cc) is the same code for both and a plain leg never looks at TLS.
//
// Readiness: the socket stays in the worker's EdgePoller, edge-triggered. SSL_ERROR_WANT_READ /
// WANT_WRITE are EAGAIN: the leg waits for the edge the socket owes. A read is drained only
// when OpenSSL says WANT_READ (it may hold a whole decrypted record the kernel no longer
// has), so TlsRecv reads until then or until the buffer is full. A record may need the other
// direction (WANT_WRITE in a read, WANT_READ in a write: a TLS 1.3 key update): remembered on
// the leg and retried on that edge (OnTlsEvents).
//
// The context comes from the route (dataplane/outbound/tls.h, built by the control plane):
// verified by default against the system store; SNI and the host-name check use the route's
// server_name or the URL's host. A failed handshake is a 502 and OnUpstreamTlsFailed.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <spdlog/spdlog.h>

#include "dataplane/kinds/websocket/proxy_relay.h"

namespace wsgate::dataplane::transport {

namespace {

size_t Chunk(size_t len) { return len > INT_MAX ? INT_MAX : len; }

// After a failed handshake: the certificate check's verdict if it failed, else OpenSSL's error.
std::string HandshakeFailure(SSL* ssl, int err) {
  const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
  std::string reason;
  if (verify != X509_V_OK) {
    reason = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  } else if (const unsigned long e = ERR_peek_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    reason = buf;
  } else if (err == SSL_ERROR_SYSCALL) {
    reason = errno != 0 ? std::string("socket error: ") + std::strerror(errno)
                        : std::string("the upstream closed the connection during the handshake");
  } else {
    reason = "TLS handshake failed (SSL error " + std::to_string(err) + ")";
  }
  ERR_clear_error();
  return reason;
}

}  // namespace

ssize_t ProxyRelay::TlsRecv(Leg& leg, char* buf, size_t len) {
  size_t total = 0;
  while (total < len) {
    ERR_clear_error();
    const int n = SSL_read(leg.ssl, buf + total, static_cast<int>(Chunk(len - total)));
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    const int err = SSL_get_error(leg.ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (err == SSL_ERROR_WANT_WRITE) leg.tls_read_wants_write = true;
      if (total > 0) return static_cast<ssize_t>(total);  // short: the socket is drained
      errno = EAGAIN;
      return -1;
    }
    // close_notify, EOF or an error: whatever came before it goes first, and the leg is told
    // to read again at once (rdhup: the end is pending) to learn it.
    if (total > 0) {
      leg.rdhup = true;
      return static_cast<ssize_t>(total);
    }
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) return 0;  // a bare FIN
    spdlog::debug("wss upstream: TLS read failed: {}", HandshakeFailure(leg.ssl, err));
    leg.tls_failed = true;  // no close_notify may follow a fatal error
    errno = ECONNRESET;
    return -1;
  }
  return static_cast<ssize_t>(total);
}

ssize_t ProxyRelay::TlsSend(Leg& leg, const char* buf, size_t len) {
  ERR_clear_error();
  const int n = SSL_write(leg.ssl, buf, static_cast<int>(Chunk(len)));
  if (n > 0) return n;
  const int err = SSL_get_error(leg.ssl, n);
  if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
    if (err == SSL_ERROR_WANT_READ) leg.tls_write_wants_read = true;
    errno = EAGAIN;
    return -1;
  }
  ERR_clear_error();
  leg.tls_failed = true;
  errno = EPIPE;
  return -1;
}

void ProxyRelay::StartUpstreamTls() {
  Leg& up = upstream_;
  if (!upstream_tls_) {
    // The route's CA file could not be read when the route was applied (logged then).
    host_->OnUpstreamTlsFailed("no TLS context for the route (its CA file was unreadable)");
    Refuse(502, "upstream TLS handshake failed\n");
    return;
  }
  SSL* ssl = SSL_new(upstream_tls_->native_handle());
  if (ssl == nullptr || SSL_set_fd(ssl, up.fd) != 1) {
    if (ssl != nullptr) SSL_free(ssl);
    host_->OnUpstreamTlsFailed("cannot create a TLS connection: " + HandshakeFailure(nullptr, 0));
    Refuse(502, "upstream TLS handshake failed\n");
    return;
  }
  // Partial writes and a moving buffer: a leg's output is a std::string that grows while a
  // write waits; buffers released while idle, as the plain path holds none either.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
  // One recv() takes every record the kernel holds, instead of a header read and a body read
  // per record; TlsRecv reads until WANT_READ, so nothing read ahead waits for an edge.
  SSL_set_read_ahead(ssl, 1);
  boost::system::error_code literal_ec;
  boost::asio::ip::make_address(tls_name_, literal_ec);
  const bool literal = !literal_ec;
  // SNI carries names only, never IP literals (RFC 6066).
  if (!literal) SSL_set_tlsext_host_name(ssl, tls_name_.c_str());
  if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0) {
    // The certificate must name tls_name_ (as boost::asio::ssl::host_name_verification checks
    // for the outbound kinds; here on the SSL object, there being no Asio stream).
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(param, tls_name_.c_str())
                           : X509_VERIFY_PARAM_set1_host(param, tls_name_.c_str(), 0);
    if (ok != 1) {
      SSL_free(ssl);
      host_->OnUpstreamTlsFailed("cannot check the name '" + tls_name_ + "'");
      Refuse(502, "upstream TLS handshake failed\n");
      return;
    }
  }
  SSL_set_connect_state(ssl);
  up.ssl = ssl;
  up.recv_some = &TlsRecv;
  up.send_some = &TlsSend;
  up.tls_handshaking = true;
  ContinueUpstreamTls();
}

void ProxyRelay::ContinueUpstreamTls() {
  Leg& up = upstream_;
  ERR_clear_error();
  const int r = SSL_do_handshake(up.ssl);
  if (r == 1) {
    up.tls_handshaking = false;
    Flush(up);  // the WebSocket handshake request, through TLS
    // A record that came with the end of the handshake is decrypted already: no edge follows.
    if (!up.done && SSL_has_pending(up.ssl) == 1) PostRead(up);
    return;
  }
  const int err = SSL_get_error(up.ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;  // the next edge
  const std::string reason = HandshakeFailure(up.ssl, err);
  EndTls(up, /*notify=*/false);
  host_->OnUpstreamTlsFailed(reason);
  Refuse(502, "upstream TLS handshake failed\n");
}

void ProxyRelay::OnTlsEvents(Leg& leg, uint32_t events) {
  if (leg.tls_handshaking) {
    ContinueUpstreamTls();
    return;
  }
  const bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  const bool writable = (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  if (readable && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) leg.rdhup = true;
  bool read = readable;
  if (writable && leg.tls_read_wants_write) {
    leg.tls_read_wants_write = false;
    read = true;
  }
  if (read) {
    leg.read_ready = true;
    if (!leg.paused) ReadLoop(leg);
  }
  if (leg.done) return;
  bool write = writable && leg.writing;
  if (readable && leg.tls_write_wants_read && leg.writing) {
    leg.tls_write_wants_read = false;
    write = true;
  }
  if (write) {
    leg.writing = false;
    Flush(leg);
  }
}

void ProxyRelay::TlsCloseNotify(Leg& leg) {
  if (leg.ssl == nullptr || leg.tls_handshaking || leg.tls_failed) return;
  ERR_clear_error();
  SSL_shutdown(leg.ssl);  // non-blocking: queued if the socket takes it, else dropped
  ERR_clear_error();
}

void ProxyRelay::EndTls(Leg& leg, bool notify) {
  if (leg.ssl == nullptr) return;
  if (notify && (SSL_get_shutdown(leg.ssl) & SSL_SENT_SHUTDOWN) == 0) TlsCloseNotify(leg);
  SSL_free(leg.ssl);
  leg.ssl = nullptr;
  leg.tls_handshaking = false;
  leg.tls_failed = false;
  leg.recv_some = &PlainRecv;
  leg.send_some = &PlainSend;
}

}  // namespace wsgate::dataplane::transport
