// Kind external_client: ExternalConnector's attempt for a target that passed the pre-checks
// (external_target_check.cc): resolution, the address check on every resolved address and on the
// connected peer, the connection through websocketpp to the checked address, the one timeout,
// and what the handshake's outcome is reported as.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <utility>
#include <websocketpp/uri.hpp>

#include "dataplane/kinds/external_client/external_client_internal.h"
#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/protocol/external_client_codec.h"
#include "common/text/url.h"
#include "dataplane/transport/tls_client_config.h"

namespace wsgate::dataplane::transport {

namespace {

using external_client_internal::AddressRefused;
using external_client_internal::AddressUrl;
using external_client_internal::Failure;
using external_client_internal::MakeLeg;
using protocol::ExternalErrorCode;
using tcp = boost::asio::ip::tcp;

// One outbound WebSocket attempt: resolve the host, check every address against the route's
// ranges, then connect (through websocketpp) to the allowed addresses in turn until one accepts
// the TCP connection. The Host header and SNI carry the name the client wrote.
template <typename Endpoint>
class ConnectorImpl : public ExternalConnector,
                      public std::enable_shared_from_this<ConnectorImpl<Endpoint>> {
 public:
  using ConPtr = typename Endpoint::connection_ptr;
  using TransportCon = typename Endpoint::connection_type::transport_con_type;

  ConnectorImpl(Endpoint& endpoint, OutboundKinds& kinds,
                std::shared_ptr<const outbound::OutboundRouteSettings> s, Done done)
      : endpoint_(endpoint),
        kinds_(kinds),
        settings_(std::move(s)),
        timer_(kinds.ioc()),
        resolver_(kinds.ioc()),
        done_(std::move(done)) {}

  // Returns the failure to report when the attempt could not even start.
  std::optional<Result> Begin(const text::Url& url, const std::vector<std::string>& protocols,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              std::chrono::milliseconds timeout, uint64_t max_message_bytes,
                              Handlers handlers);
  void Cancel() override;
  void FinishWith(Result result);
  // Keeps the attempt alive until it finishes or is cancelled, whoever else holds it.
  std::shared_ptr<ConnectorImpl> self_;

 private:
  void OnResolved(const boost::system::error_code& ec, std::vector<tcp::endpoint> endpoints);
  // Starts a websocketpp connection to candidates_[next_++].
  void Attempt();
  void OnOpen();
  void OnFail();
  void OnTimeout();

  Endpoint& endpoint_;
  OutboundKinds& kinds_;
  std::shared_ptr<const outbound::OutboundRouteSettings> settings_;
  boost::asio::steady_timer timer_;
  tcp::resolver resolver_;
  Done done_;
  text::Url url_;
  std::vector<std::string> protocols_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::chrono::milliseconds timeout_{0};
  uint64_t max_message_bytes_ = 0;
  Handlers handlers_;
  std::vector<tcp::endpoint> candidates_;  // resolved and allowed, in resolver order
  size_t next_ = 0;
  ConPtr con_;
  bool tcp_connected_ = false;  // the current attempt's TCP connection was established
  bool finished_ = false;
  bool timed_out_ = false;
  std::optional<int> refused_address_;  // set by the post-connect address check
};

// websocketpp builds a wss:// connection's TLS stream inside get_connection, from the endpoint's
// handlers: the route's context and the host name to verify are handed over just before.
template <typename Endpoint>
void PrepareTls(OutboundKinds&, const outbound::OutboundRouteSettings&, const std::string&) {}

template <>
void PrepareTls<TlsClientEndpoint>(OutboundKinds& kinds,
                                   const outbound::OutboundRouteSettings& settings,
                                   const std::string& host) {
  kinds.PrepareTls(settings.tls, host);
}

template <typename Endpoint>
std::optional<ExternalConnector::Result> ConnectorImpl<Endpoint>::Begin(
    const text::Url& url, const std::vector<std::string>& protocols,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, uint64_t max_message_bytes, Handlers handlers) {
  if (url.is_secure() && !settings_->tls) {
    return Failure(ExternalErrorCode::kFailed, "wss:// is not available: no TLS context");
  }
  url_ = url;
  protocols_ = protocols;
  headers_ = headers;
  timeout_ = timeout;
  max_message_bytes_ = max_message_bytes;
  handlers_ = std::move(handlers);
  std::weak_ptr<ConnectorImpl> weak = this->shared_from_this();
  // One deadline for the whole attempt: resolution, every address tried, the handshake.
  timer_.expires_after(timeout);
  timer_.async_wait([weak](const boost::system::error_code& tec) {
    if (tec) return;
    if (auto self = weak.lock()) self->OnTimeout();
  });
  boost::system::error_code ec;
  auto literal = boost::asio::ip::make_address(url_.host, ec);
  if (!ec) {
    // Posted, not called: `done` never runs from inside Start.
    boost::asio::post(kinds_.ioc(), [weak, ep = tcp::endpoint(literal, url_.port)] {
      if (auto self = weak.lock()) self->OnResolved({}, {ep});
    });
    return std::nullopt;
  }
  // The resolver (getaddrinfo) also reads the numeric forms an IP literal parser refuses
  // ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0"): whatever the host looks like,
  // what it resolves to is what gets checked.
  resolver_.async_resolve(
      url_.host, std::to_string(url_.port), tcp::resolver::numeric_service,
      [weak](const boost::system::error_code& rec, tcp::resolver::results_type results) {
        auto self = weak.lock();
        if (!self) return;
        std::vector<tcp::endpoint> eps;
        for (const auto& r : results) eps.push_back(r.endpoint());
        self->OnResolved(rec, std::move(eps));
      });
  return std::nullopt;
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::OnResolved(const boost::system::error_code& ec,
                                         std::vector<tcp::endpoint> endpoints) {
  if (finished_) return;
  if (ec) {
    FinishWith(Failure(ExternalErrorCode::kRefused,
                       "Connection refused: cannot resolve " + url_.host + ": " + ec.message()));
    return;
  }
  std::optional<outbound::RefusalReason> first_refusal;
  for (const tcp::endpoint& ep : endpoints) {
    if (auto r = settings_->policy.CheckAddress(ep.address())) {
      if (!first_refusal) first_refusal = r;
    } else {
      candidates_.push_back(ep);
    }
  }
  if (candidates_.empty()) {
    if (first_refusal) {
      FinishWith(AddressRefused(*first_refusal));
    } else {
      FinishWith(
          Failure(ExternalErrorCode::kRefused, "Connection refused: no address for " + url_.host));
    }
    return;
  }
  Attempt();
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::Attempt() {
  const tcp::endpoint target = candidates_[next_++];
  tcp_connected_ = false;
  PrepareTls<Endpoint>(kinds_, *settings_, url_.host);
  websocketpp::lib::error_code ec;
  ConPtr con = endpoint_.get_connection(AddressUrl(url_, target.address()), ec);
  if (ec || !con) {
    FinishWith(Failure(ExternalErrorCode::kFailed, "Cannot connect to " + url_.ToString() + ": " +
                                                       (ec ? ec.message() : "unknown")));
    return;
  }
  try {
    for (const std::string& p : protocols_) con->add_subprotocol(p);
    for (const auto& [name, value] : headers_) con->replace_header(name, value);
  } catch (const std::exception& e) {
    FinishWith(Failure(ExternalErrorCode::kFailed,
                       std::string("Cannot build the handshake: ") + e.what()));
    return;
  }
  con->set_max_message_size(max_message_bytes_);
  con->set_open_handshake_timeout(static_cast<long>(timeout_.count()) + 1000);
  std::weak_ptr<ConnectorImpl> weak = this->shared_from_this();
  // Only checked addresses are connected to; the peer is checked once more right after the TCP
  // connect and before any byte (TLS or HTTP) is written, in case the two ever differ. Closing
  // the socket makes the next step fail.
  auto* raw = con.get();
  con->set_tcp_pre_init_handler([weak, raw](websocketpp::connection_hdl) {
    auto self = weak.lock();
    if (!self) return;
    self->tcp_connected_ = true;
    boost::system::error_code rec;
    tcp::endpoint remote = raw->get_raw_socket().remote_endpoint(rec);
    if (rec) return;
    if (auto refusal = self->settings_->policy.CheckAddress(remote.address())) {
      self->refused_address_ = static_cast<int>(*refusal);
      raw->get_raw_socket().close(rec);
    }
  });
  con->set_open_handler([weak](websocketpp::connection_hdl) {
    if (auto self = weak.lock()) self->OnOpen();
  });
  con->set_fail_handler([weak](websocketpp::connection_hdl) {
    if (auto self = weak.lock()) self->OnFail();
  });
  if (handlers_.on_message) {
    con->set_message_handler(
        [f = handlers_.on_message](websocketpp::connection_hdl, MessagePtr m) { f(m); });
  }
  if (handlers_.on_close) {
    con->set_close_handler([f = handlers_.on_close](websocketpp::connection_hdl) { f(); });
  }
  con_ = con;
  endpoint_.connect(con);
  // websocketpp took the address URL for its connect (and its resolver, which has nothing to
  // look up in a literal). From here on the connection carries the URL the client wrote: the
  // Host header comes from the connection's URI, SNI from the TLS socket's.
  auto named = std::make_shared<websocketpp::uri>(url_.ToString());
  con->set_uri(named);
  static_cast<TransportCon&>(*con).set_uri(named);
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::FinishWith(Result result) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  resolver_.cancel();
  Done done = std::move(done_);
  done_ = nullptr;
  auto keep = std::move(self_);  // `this` stays valid until the end of this function
  if (done) done(std::move(result));
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::Cancel() {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  resolver_.cancel();
  done_ = nullptr;
  if (con_ && con_->get_state() == websocketpp::session::state::connecting) {
    boost::system::error_code ec;
    con_->get_raw_socket().cancel(ec);
    con_->terminate(websocketpp::error::make_error_code(websocketpp::error::operation_canceled));
  }
  self_.reset();
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::OnOpen() {
  if (finished_) {
    websocketpp::lib::error_code ec;
    con_->close(1001, "client went away", ec);
    return;
  }
  boost::system::error_code ec;
  con_->get_raw_socket().set_option(tcp::no_delay(true), ec);
  Result r;
  r.ok = true;
  r.leg = MakeLeg(con_);
  FinishWith(std::move(r));
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::OnFail() {
  if (finished_) return;
  if (refused_address_) {
    FinishWith(AddressRefused(static_cast<outbound::RefusalReason>(*refused_address_)));
    return;
  }
  websocketpp::lib::error_code ec = con_->get_ec();
  const int status = static_cast<int>(con_->get_response_code());
  const bool timeout =
      timed_out_ ||
      ec == websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout) ||
      ec == websocketpp::transport::error::make_error_code(websocketpp::transport::error::timeout);
  if (!timeout && !tcp_connected_ && next_ < candidates_.size()) {
    // No TCP connection at this address: the next one may take it ("localhost": ::1, then
    // 127.0.0.1).
    Attempt();
    return;
  }
  if (timeout) {
    FinishWith(Failure(ExternalErrorCode::kTimeout, "Connection timeout"));
  } else if (status == 401 || status == 403) {
    FinishWith(Failure(ExternalErrorCode::kAuthFailed,
                       "Authentication failed (HTTP " + std::to_string(status) + ")"));
  } else if (status != 0) {
    FinishWith(Failure(ExternalErrorCode::kFailed,
                       "Handshake refused (HTTP " + std::to_string(status) + ")"));
  } else if (ec.category() == websocketpp::transport::asio::socket::get_socket_category() ||
             ec == websocketpp::transport::error::make_error_code(
                       websocketpp::transport::error::tls_short_read)) {
    FinishWith(Failure(ExternalErrorCode::kFailed, "TLS failure: " + ec.message()));
  } else {
    FinishWith(Failure(ExternalErrorCode::kRefused, "Connection refused: " + ec.message()));
  }
}

template <typename Endpoint>
void ConnectorImpl<Endpoint>::OnTimeout() {
  if (finished_) return;
  timed_out_ = true;
  resolver_.cancel();
  if (con_) {
    boost::system::error_code ec;
    con_->get_raw_socket().cancel(ec);
    con_->terminate(
        websocketpp::error::make_error_code(websocketpp::error::open_handshake_timeout));
  }
  FinishWith(Failure(ExternalErrorCode::kTimeout, "Connection timeout"));
}

template <typename Endpoint>
std::shared_ptr<ExternalConnector> StartOn(
    Endpoint& endpoint, OutboundKinds& kinds,
    std::shared_ptr<const outbound::OutboundRouteSettings> settings, const text::Url& url,
    const std::vector<std::string>& protocols,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, uint64_t max_message_bytes,
    ExternalConnector::Handlers handlers, ExternalConnector::Done done) {
  auto c = std::make_shared<ConnectorImpl<Endpoint>>(endpoint, kinds, std::move(settings),
                                                     std::move(done));
  c->self_ = c;
  if (auto failed =
          c->Begin(url, protocols, headers, timeout, max_message_bytes, std::move(handlers))) {
    boost::asio::post(kinds.ioc(),
                      [c, r = *std::move(failed)]() mutable { c->FinishWith(std::move(r)); });
  }
  return c;
}

}  // namespace

namespace external_client_internal {

std::shared_ptr<ExternalConnector> StartConnect(
    OutboundKinds& kinds, std::shared_ptr<const outbound::OutboundRouteSettings> settings,
    const text::Url& url, const std::vector<std::string>& protocols,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, uint64_t max_message_bytes,
    ExternalConnector::Handlers handlers, ExternalConnector::Done done) {
  if (url.is_secure()) {
    return StartOn(kinds.tls_ws_client(), kinds, std::move(settings), url, protocols, headers,
                   timeout, max_message_bytes, std::move(handlers), std::move(done));
  }
  return StartOn(kinds.ws_client(), kinds, std::move(settings), url, protocols, headers, timeout,
                 max_message_bytes, std::move(handlers), std::move(done));
}

}  // namespace external_client_internal

}  // namespace wsgate::dataplane::transport
