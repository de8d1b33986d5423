#include "dataplane/kinds/external_client/external_client_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <utility>
#include <variant>
#include <websocketpp/uri.hpp>

#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/protocol/external_client_codec.h"
#include "dataplane/protocol/url.h"
#include "dataplane/transport/tls_client_config.h"

namespace wsgate::dataplane::transport {

namespace {

using protocol::ExternalErrorCode;
using tcp = boost::asio::ip::tcp;

protocol::Clock::time_point Now() { return protocol::Clock::now(); }

ExternalConnector::Result Failure(ExternalErrorCode code, std::string message,
                                  std::optional<int> refusal = std::nullopt) {
  ExternalConnector::Result r;
  r.ok = false;
  r.code = static_cast<int>(code);
  r.message = std::move(message);
  r.refusal = refusal;
  return r;
}

// The checks made before anything touches the network: the allow-list on the URL as written,
// and the address ranges when the host is an IP literal.
std::optional<ExternalConnector::Result> PreCheck(const outbound::OutboundRouteSettings& settings,
                                                  const std::string& url_text) {
  auto url = protocol::ParseUrl(url_text);
  if (!url.ok()) {
    return Failure(ExternalErrorCode::kNotAllowed,
                   "Invalid URL: " + std::string(url.status().message()),
                   static_cast<int>(outbound::RefusalReason::kBadUrl));
  }
  if (auto refusal = settings.policy.Check(*url)) {
    return Failure(ExternalErrorCode::kNotAllowed,
                   std::string("Target not allowed by this route (") +
                       outbound::RefusalReasonName(*refusal) + ")",
                   static_cast<int>(*refusal));
  }
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(url->host, ec);
  if (!ec) {
    if (auto refusal = settings.policy.CheckAddress(address)) {
      return Failure(ExternalErrorCode::kNotAllowed,
                     std::string("Target address not allowed by this route (") +
                         outbound::RefusalReasonName(*refusal) + ")",
                     static_cast<int>(*refusal));
    }
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ExternalConnector

namespace {

template <typename ConPtr>
class LegImpl : public ExternalLeg {
 public:
  explicit LegImpl(ConPtr con) : con_(std::move(con)) {}
  // Nobody holds the leg any more: close it if that has not happened yet.
  ~LegImpl() override { Close(1001, "client went away"); }
  websocketpp::lib::error_code Send(const std::string& payload, bool binary) override {
    return con_->send(
        payload, binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text);
  }
  void Close(uint16_t code, const std::string& reason) override {
    if (closed_) return;
    closed_ = true;
    // The handlers stay: this may run inside one of them, and the session's generation check
    // already ignores what a replaced leg still delivers.
    websocketpp::lib::error_code ec;  // invalid_state: already closing
    con_->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
  }

 private:
  ConPtr con_;
  bool closed_ = false;
};

// The answer to a target whose addresses are all refused. It names the range only: never the
// address (what a name resolved to is the gateway's business), and it is given before any
// connection is attempted, so it is the same whether or not something listens there.
ExternalConnector::Result AddressRefused(outbound::RefusalReason reason) {
  return Failure(ExternalErrorCode::kNotAllowed,
                 std::string("Target address not allowed by this route (") +
                     outbound::RefusalReasonName(reason) + ")",
                 static_cast<int>(reason));
}

// The URL websocketpp connects to: the checked address as an IP literal, so that websocketpp's
// own resolver has nothing left to resolve (a second lookup could answer differently).
std::string AddressUrl(const protocol::Url& url, const boost::asio::ip::address& address) {
  std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return url.scheme + "://" + host + ":" + std::to_string(url.port) + url.Target();
}

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
  std::optional<Result> Begin(const protocol::Url& url, const std::vector<std::string>& protocols,
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
  protocol::Url url_;
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
    const protocol::Url& url, const std::vector<std::string>& protocols,
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
      FinishWith(Failure(ExternalErrorCode::kRefused,
                         "Connection refused: no address for " + url_.host));
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
    FinishWith(Failure(ExternalErrorCode::kFailed, "Cannot connect to " + url_.ToString() +
                                                       ": " + (ec ? ec.message() : "unknown")));
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
  r.leg = std::make_shared<LegImpl<ConPtr>>(con_);
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
    std::shared_ptr<const outbound::OutboundRouteSettings> settings, const protocol::Url& url,
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

// A connector that only reports a failure found before anything was attempted.
class FailedConnector : public ExternalConnector {
 public:
  void Cancel() override { *cancelled_ = true; }
  std::shared_ptr<bool> cancelled_ = std::make_shared<bool>(false);
};

}  // namespace

std::shared_ptr<ExternalConnector> ExternalConnector::Start(
    OutboundKinds& kinds, std::shared_ptr<const outbound::OutboundRouteSettings> settings,
    const std::string& url, const std::vector<std::string>& protocols,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, uint64_t max_message_bytes, Handlers handlers, Done done) {
  std::optional<Result> refused;
  if (!settings) {
    refused = Failure(ExternalErrorCode::kNotAllowed, "no allow-list");
  } else {
    refused = PreCheck(*settings, url);
  }
  if (refused) {
    auto c = std::make_shared<FailedConnector>();
    boost::asio::post(kinds.ioc(), [cancelled = c->cancelled_, r = *std::move(refused),
                                    done = std::move(done)]() mutable {
      if (!*cancelled) done(std::move(r));
    });
    return c;
  }
  // PreCheck parsed it already. From here on the normalised form is used (lowercase scheme and
  // host), the one the allow-list judged: websocketpp's own URI parser refuses "WS://".
  const protocol::Url parsed = *protocol::ParseUrl(url);
  if (parsed.is_secure()) {
    return StartOn(kinds.tls_ws_client(), kinds, std::move(settings), parsed, protocols, headers,
                   timeout, max_message_bytes, std::move(handlers), std::move(done));
  }
  return StartOn(kinds.ws_client(), kinds, std::move(settings), parsed, protocols, headers,
                 timeout, max_message_bytes, std::move(handlers), std::move(done));
}

// ---------------------------------------------------------------------------------------------
// ExternalClientSession

ExternalClientSession::ExternalClientSession(OutboundKinds& kinds,
                                             std::shared_ptr<const RouteConfig> route,
                                             std::string client_id,
                                             std::unique_ptr<ClientLink> link,
                                             RouteWorkerCounters* counters)
    : kinds_(kinds),
      route_(std::move(route)),
      client_id_(std::move(client_id)),
      link_(std::move(link)),
      counters_(counters) {}

ExternalClientSession::~ExternalClientSession() { OnTerminated(); }

void ExternalClientSession::OnOpen() {
  opened_ = true;
  kinds_.registry().AddClient(client_id_);
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: client {} connected", route_->name, client_id_);
  }
}

void ExternalClientSession::OnTerminated() {
  if (terminated_) return;
  terminated_ = true;
  if (connector_) connector_->Cancel();
  connector_.reset();
  if (external_) external_->Close(1001, "client went away");
  external_.reset();
  ReleaseExternal();
  if (opened_) kinds_.registry().RemoveClient(client_id_);
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: client {} disconnected", route_->name, client_id_);
  }
}

void ExternalClientSession::Emit(const std::string& event) {
  if (terminated_) return;
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: to client {}: {}", route_->name, client_id_, event);
  }
  link_->SendText(event);
}

bool ExternalClientSession::OverRate() {
  const uint32_t limit = route_->external_client.messages_per_minute;
  const auto now = std::chrono::steady_clock::now();
  if (recent_.size() >= limit && now - recent_.front() < std::chrono::minutes(1)) return true;
  recent_.push_back(now);
  while (recent_.size() > limit) recent_.pop_front();
  return false;
}

void ExternalClientSession::OnMessage(const MessagePtr& msg) {
  if (terminated_) return;
  if (OverRate()) {
    const std::string reason =
        "rate limit exceeded: " + std::to_string(route_->external_client.messages_per_minute) +
        " messages per minute";
    if (kinds_.debug_events()) {
      spdlog::info("external_client {}: client {}: {}", route_->name, client_id_, reason);
    }
    link_->Close(1008, reason);
    return;
  }
  if (kinds_.debug_events()) {
    spdlog::info("external_client {}: from client {}: {}", route_->name, client_id_,
                 msg->get_payload());
  }
  if (msg->get_opcode() != websocketpp::frame::opcode::text) {
    Emit(protocol::InvalidFormatEvent("Invalid message format: expected a JSON text message",
                                      Now()));
    return;
  }
  protocol::ExternalCommand command = protocol::ParseExternalCommand(msg->get_payload());
  if (auto* bad = std::get_if<protocol::ExternalCommandError>(&command)) {
    Emit(protocol::InvalidFormatEvent(bad->message, Now()));
  } else if (auto* connect = std::get_if<protocol::ConnectExternal>(&command)) {
    if (state_ != State::kIdle) {
      Emit(protocol::ConnectionErrorEvent(
          "Already connected to an external WebSocket; send disconnect_external first",
          ExternalErrorCode::kFailed, Now()));
      return;
    }
    Connect(std::move(connect->url), std::move(connect->protocols), std::move(connect->headers));
  } else if (auto* send = std::get_if<protocol::SendExternalMessage>(&command)) {
    if (state_ == State::kConnecting) {
      pending_sends_.push_back(std::move(*send));  // bounded by messages_per_minute
      return;
    }
    SendNow(*send);
  } else {  // disconnect_external
    FailPendingSends("Disconnected before the connection was open");
    if (connector_) connector_->Cancel();
    connector_.reset();
    if (external_) external_->Close(1000, "disconnect_external");
    external_.reset();
    ++leg_generation_;
    ReleaseExternal();
    Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kDisconnected, Now()));
  }
}

void ExternalClientSession::SendNow(const protocol::SendExternalMessage& send) {
  if (state_ != State::kOpen || !external_) {
    Emit(protocol::SendErrorEvent("Not connected to an external WebSocket", Now()));
    return;
  }
  websocketpp::lib::error_code ec = external_->Send(send.payload, send.binary);
  if (ec) {
    Emit(protocol::SendErrorEvent("Failed to send message: " + ec.message(), Now()));
  } else {
    Emit(protocol::MessageSentEvent(send.content, Now()));
  }
}

void ExternalClientSession::FailPendingSends(const std::string& why) {
  while (!pending_sends_.empty()) {
    pending_sends_.pop_front();
    Emit(protocol::SendErrorEvent("Failed to send message: " + why, Now()));
  }
}

void ExternalClientSession::Connect(std::string url, std::vector<std::string> protocols,
                                    std::vector<std::pair<std::string, std::string>> headers) {
  const auto& settings = route_->external_client;
  if (auto refused = PreCheck(*route_->outbound, url)) {
    if (refused->refusal) counters_->targets_refused[*refused->refusal].Add();
    Emit(protocol::ConnectionErrorEvent(refused->message,
                                        static_cast<ExternalErrorCode>(refused->code), Now()));
    Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kError, Now()));
    return;
  }
  if (!kinds_.registry().TryAddExternal(route_->name, client_id_,
                                        settings.max_connections_per_client)) {
    Emit(protocol::ConnectionErrorEvent(
        "Maximum of " + std::to_string(settings.max_connections_per_client) +
            " concurrent external connections for this client reached",
        ExternalErrorCode::kLimitExceeded, Now()));
    return;
  }
  slot_held_ = true;
  state_ = State::kConnecting;
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kConnecting, Now()));
  std::weak_ptr<ExternalClientSession> weak = weak_from_this();
  const uint64_t generation = ++leg_generation_;
  ExternalConnector::Handlers handlers;
  handlers.on_message = [weak, generation](const MessagePtr& m) {
    auto self = weak.lock();
    if (self && self->leg_generation_ == generation) self->OnExternalMessage(m);
  };
  handlers.on_close = [weak, generation]() {
    auto self = weak.lock();
    if (self && self->leg_generation_ == generation && self->external_) self->OnExternalClose();
  };
  connector_ = ExternalConnector::Start(kinds_, route_->outbound, url, protocols, headers,
                                        settings.connect_timeout, route_->limits.max_message_bytes,
                                        std::move(handlers), [weak](ExternalConnector::Result r) {
                                          if (auto self = weak.lock())
                                            self->OnConnectDone(std::move(r));
                                        });
}

void ExternalClientSession::OnConnectDone(ExternalConnector::Result result) {
  connector_.reset();
  if (terminated_) return;
  if (!result.ok) {
    ReleaseExternal();
    if (result.refusal) counters_->targets_refused[*result.refusal].Add();
    Emit(protocol::ConnectionErrorEvent(result.message, static_cast<ExternalErrorCode>(result.code),
                                        Now()));
    Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kError, Now()));
    FailPendingSends(result.message);
    return;
  }
  external_ = std::move(result.leg);
  state_ = State::kOpen;
  counters_->external_connections_active.Add(1);
  counters_->external_connections_opened.Add();
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kConnected, Now()));
  while (!pending_sends_.empty() && state_ == State::kOpen) {
    protocol::SendExternalMessage send = std::move(pending_sends_.front());
    pending_sends_.pop_front();
    SendNow(send);
  }
}

void ExternalClientSession::OnExternalMessage(const MessagePtr& msg) {
  if (state_ != State::kOpen) return;
  Emit(protocol::MessageReceivedEvent(
      msg->get_payload(), msg->get_opcode() == websocketpp::frame::opcode::binary, Now()));
}

void ExternalClientSession::OnExternalClose() {
  external_.reset();
  ReleaseExternal();
  Emit(protocol::ConnectionStatusEvent(protocol::ConnectionStatus::kDisconnected, Now()));
}

void ExternalClientSession::ReleaseExternal() {
  if (state_ == State::kOpen) counters_->external_connections_active.Add(-1);
  state_ = State::kIdle;
  if (slot_held_) {
    kinds_.registry().RemoveExternal(route_->name, client_id_);
    slot_held_ = false;
  }
}

}  // namespace wsgate::dataplane::transport
