#include "dataplane/outbound/http_client.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <deque>
#include <unordered_map>

#include "common/text/ascii.h"
#include "common/text/url.h"

namespace wsgate::dataplane::outbound {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using boost::system::error_code;

http::verb Verb(protocol::HttpMethod m) {
  switch (m) {
    case protocol::HttpMethod::kGet:
      return http::verb::get;
    case protocol::HttpMethod::kPost:
      return http::verb::post;
    case protocol::HttpMethod::kPut:
      return http::verb::put;
    case protocol::HttpMethod::kDelete:
      return http::verb::delete_;
    case protocol::HttpMethod::kPatch:
      return http::verb::patch;
    case protocol::HttpMethod::kHead:
      return http::verb::head;
  }
  return http::verb::get;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// One upstream connection, plain or TLS. Lives in an exchange while in use, in the idle pool
// between requests.
struct Connection {
  Connection(asio::io_context& ioc, TlsContextPtr tls_ctx) : ctx(std::move(tls_ctx)) {
    if (ctx) {
      tls.emplace(ioc, *ctx);
    } else {
      plain.emplace(ioc);
    }
  }
  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void Close() {
    error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().socket().close(ignored);
  }
  // True when the peer has not closed it and sent nothing unasked: a non-blocking peek.
  bool LooksAlive() {
    auto& sock = tcp().socket();
    if (!sock.is_open()) return false;
    char c;
    ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  TlsContextPtr ctx;  // keeps the SSL_CTX alive as long as the stream
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  std::string key;
  asio::ip::address remote;
  SteadyClock::time_point idle_since;
};

using ConnectionPtr = std::unique_ptr<Connection>;

std::string PoolKey(const text::Url& url, const TlsContextPtr& ctx) {
  char ptr[32];
  std::snprintf(ptr, sizeof(ptr), "%p", static_cast<const void*>(ctx.get()));
  return text::Cat(url.scheme, "://", url.HostHeader(), ":", url.port, "#", ptr);
}

}  // namespace

class Exchange;

class HttpClient::Impl : public std::enable_shared_from_this<HttpClient::Impl> {
 public:
  Impl(asio::io_context& ioc, HttpClientOptions options)
      : ioc_(ioc), options_(std::move(options)), sweep_timer_(ioc) {}

  asio::io_context& ioc() { return ioc_; }
  const HttpClientOptions& options() const { return options_; }
  bool closed() const { return closed_; }

  ConnectionPtr TakeIdle(const std::string& key, const TargetPolicy& policy);
  void ReturnIdle(ConnectionPtr conn);
  void Shutdown();

  uint64_t Register(std::shared_ptr<Exchange> ex);
  void Unregister(uint64_t id) { exchanges_.erase(id); }
  void Cancel(uint64_t id);

  size_t in_flight() const { return exchanges_.size(); }
  size_t idle() const { return idle_count_; }
  uint64_t opened = 0;
  uint64_t reused = 0;

 private:
  void ArmSweep();
  void Sweep();

  asio::io_context& ioc_;
  const HttpClientOptions options_;
  bool closed_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Exchange>> exchanges_;
  // Per key, oldest first; reuse takes the most recently returned (warmest) one.
  std::unordered_map<std::string, std::deque<ConnectionPtr>> idle_;
  size_t idle_count_ = 0;
  asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
};

// One request, across its redirect hops. Owned by the Impl's table while in flight and by the
// handlers it has pending.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<HttpClient::Impl> client,
           std::shared_ptr<const OutboundRouteSettings> route, OutboundRequest request,
           OutboundCallback done)
      : client_(std::move(client)),
        route_(std::move(route)),
        request_(std::move(request)),
        done_(std::move(done)),
        timer_(client_->ioc()),
        resolver_(client_->ioc()) {}

  void set_id(uint64_t id) { id_ = id; }

  void Start() {
    auto url = text::ParseUrl(request_.url);
    if (!url.ok()) {
      return Fail(HttpClientError::kTargetNotAllowed,
                  text::Cat("target URL rejected: ", std::string(url.status().message())),
                  RefusalReason::kBadUrl);
    }
    url_ = *std::move(url);
    if (url_.scheme != "http" && url_.scheme != "https") {
      return Fail(HttpClientError::kTargetNotAllowed, "only http and https targets",
                  RefusalReason::kScheme);
    }
    if (auto refusal = route_->policy.Check(url_)) return Refuse(*refusal, url_.ToString());
    if (request_.has_body && request_.body.size() > route_->max_request_bytes) {
      return Fail(HttpClientError::kRequestTooLarge,
                  text::Cat("request body of ", request_.body.size(), " bytes is above the ",
                            route_->max_request_bytes, "-byte limit"));
    }
    deadline_ = SteadyClock::now() + request_.timeout;
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) { self->OnDeadline(ec); });
    Hop();
  }

  // Called by Cancel and Shutdown: stop everything, never call back.
  void Abort() {
    if (finished_) return;
    finished_ = true;
    silent_ = true;
    StopIo();
  }

 private:
  void StopIo() {
    error_code ignored;
    timer_.cancel();
    resolver_.cancel();
    if (conn_) conn_->Close();
  }

  void OnDeadline(const error_code& ec) {
    if (ec || finished_) return;
    timed_out_ = true;
    // The pending resolve/connect/read completes with an error and reports the timeout.
    resolver_.cancel();
    if (conn_) conn_->Close();
  }

  void Hop() {
    reused_ = false;
    TlsContextPtr ctx = url_.is_secure() ? route_->tls : nullptr;
    if (url_.is_secure() && !ctx) {
      return Fail(HttpClientError::kUpstreamUnreachable, "https is not configured for this route");
    }
    key_ = PoolKey(url_, ctx);
    conn_ = client_->TakeIdle(key_, route_->policy);
    if (conn_) {
      reused_ = true;
      ++client_->reused;
      return SendRequest();
    }
    Resolve();
  }

  void Resolve() {
    error_code ec;
    auto literal = asio::ip::make_address(url_.host, ec);
    if (!ec) {
      return OnResolved({}, {tcp::endpoint(literal, url_.port)});
    }
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port), tcp::resolver::numeric_service,
        [self = shared_from_this()](const error_code& rec, tcp::resolver::results_type results) {
          std::vector<tcp::endpoint> eps;
          for (const auto& r : results) eps.push_back(r.endpoint());
          self->OnResolved(rec, std::move(eps));
        });
  }

  void OnResolved(const error_code& ec, std::vector<tcp::endpoint> endpoints) {
    if (finished_) return;
    if (timed_out_) return TimedOut();
    if (ec) {
      return Fail(HttpClientError::kUpstreamUnreachable,
                  text::Cat("cannot resolve ", url_.host, ": ", ec.message()));
    }
    std::vector<tcp::endpoint> allowed;
    std::optional<RefusalReason> first_refusal;
    for (const auto& ep : endpoints) {
      if (auto r = route_->policy.CheckAddress(ep.address())) {
        if (!first_refusal) first_refusal = r;
      } else {
        allowed.push_back(ep);
      }
    }
    if (allowed.empty()) {
      if (first_refusal) {
        return Refuse(*first_refusal,
                      text::Cat(url_.host, " (", RefusalReasonName(*first_refusal), " address)"));
      }
      return Fail(HttpClientError::kUpstreamUnreachable, text::Cat("no address for ", url_.host));
    }
    TlsContextPtr ctx = url_.is_secure() ? route_->tls : nullptr;
    conn_ = std::make_unique<Connection>(client_->ioc(), ctx);
    conn_->key = key_;
    ++client_->opened;
    auto now = SteadyClock::now();
    auto connect_deadline = std::min(deadline_, now + client_->options().connect_timeout);
    conn_->tcp().expires_at(connect_deadline);
    conn_->tcp().async_connect(
        allowed, [self = shared_from_this()](const error_code& cec, const tcp::endpoint& ep) {
          self->OnConnected(cec, ep);
        });
  }

  void OnConnected(const error_code& ec, const tcp::endpoint& ep) {
    if (finished_) return;
    if (timed_out_) return TimedOut();
    if (ec) {
      std::string why = ec == beast::error::timeout ? "connect timed out" : ec.message();
      return Fail(HttpClientError::kUpstreamUnreachable,
                  text::Cat("cannot connect to ", url_.HostHeader(), ": ", why));
    }
    conn_->tcp().expires_never();
    // The address actually connected to is what counts, whatever the resolver said.
    error_code rec;
    tcp::endpoint remote = conn_->tcp().socket().remote_endpoint(rec);
    if (rec) return Fail(HttpClientError::kUpstreamUnreachable, rec.message());
    if (auto r = route_->policy.CheckAddress(remote.address())) {
      return Refuse(*r, remote.address().to_string());
    }
    (void)ep;
    conn_->remote = remote.address();
    error_code ignored;
    conn_->tcp().socket().set_option(tcp::no_delay(true), ignored);
    if (!conn_->tls) return SendRequest();

    SSL* ssl = conn_->tls->native_handle();
    error_code literal_ec;
    asio::ip::make_address(url_.host, literal_ec);
    // SNI carries names only, never IP literals (RFC 6066).
    if (literal_ec && !SSL_set_tlsext_host_name(ssl, url_.host.c_str())) {
      return Fail(HttpClientError::kUpstreamUnreachable, "cannot set TLS SNI");
    }
    if (VerifiesPeer(*conn_->ctx)) {
      conn_->tls->set_verify_callback(asio::ssl::host_name_verification(url_.host), ignored);
    }
    conn_->tcp().expires_at(deadline_);
    conn_->tls->async_handshake(
        asio::ssl::stream_base::client,
        [self = shared_from_this()](const error_code& hec) { self->OnHandshake(hec); });
  }

  void OnHandshake(const error_code& ec) {
    if (finished_) return;
    if (timed_out_ || ec == beast::error::timeout) return TimedOut();
    if (ec) {
      return Fail(HttpClientError::kUpstreamUnreachable,
                  text::Cat("TLS handshake with ", url_.HostHeader(), " failed: ", ec.message()));
    }
    conn_->tcp().expires_never();
    SendRequest();
  }

  void SendRequest() {
    req_ = {};
    req_.method(Verb(method_));
    req_.target(url_.Target());
    req_.version(11);
    req_.set(http::field::host, url_.HostHeader());
    req_.set(http::field::user_agent, client_->options().user_agent);
    bool has_content_type = false;
    for (const auto& [name, value] : headers_) {
      if (text::Lower(name) == "content-type") has_content_type = true;
      req_.insert(name, value);
    }
    if (has_body_) {
      if (!has_content_type) req_.set(http::field::content_type, request_.default_content_type);
      req_.body() = request_.body;
    }
    req_.prepare_payload();
    auto on_write = [self = shared_from_this()](const error_code& ec, size_t) {
      self->OnWritten(ec);
    };
    if (conn_->tls) {
      http::async_write(*conn_->tls, req_, std::move(on_write));
    } else {
      http::async_write(*conn_->plain, req_, std::move(on_write));
    }
  }

  void OnWritten(const error_code& ec) {
    if (finished_) return;
    if (timed_out_) return TimedOut();
    if (ec) {
      if (reused_ && !retried_) return Retry();
      return TransportFailed(ec, "sending the request");
    }
    parser_.emplace();
    parser_->header_limit(client_->options().max_header_bytes);
    parser_->body_limit(route_->max_response_bytes);
    if (method_ == protocol::HttpMethod::kHead) parser_->skip(true);
    // The head first, then the body: Boost 1.74's parser misses the Content-Length body limit
    // when head and body arrive in one eager read (async_read is eager), but checks it when the
    // head is read on its own.
    auto on_header = [self = shared_from_this()](const error_code& rec, size_t n) {
      self->OnHeader(rec, n);
    };
    if (conn_->tls) {
      http::async_read_header(*conn_->tls, conn_->buffer, *parser_, std::move(on_header));
    } else {
      http::async_read_header(*conn_->plain, conn_->buffer, *parser_, std::move(on_header));
    }
  }

  void OnHeader(const error_code& ec, size_t bytes) {
    if (finished_) return;
    if (ec || parser_->is_done()) return OnRead(ec, bytes);
    auto on_read = [self = shared_from_this()](const error_code& rec, size_t n) {
      self->OnRead(rec, n);
    };
    if (conn_->tls) {
      http::async_read(*conn_->tls, conn_->buffer, *parser_, std::move(on_read));
    } else {
      http::async_read(*conn_->plain, conn_->buffer, *parser_, std::move(on_read));
    }
  }

  void OnRead(const error_code& ec, size_t bytes) {
    if (finished_) return;
    if (timed_out_) return TimedOut();
    if (ec == http::error::body_limit) {
      return Fail(HttpClientError::kResponseTooLarge,
                  text::Cat("response body above the ", route_->max_response_bytes, "-byte limit"));
    }
    if (ec == http::error::header_limit) {
      return Fail(HttpClientError::kResponseTooLarge, "response headers too large");
    }
    if (ec) {
      // A kept-alive connection the server closed just as we reused it: try once on a new one.
      if (reused_ && !retried_ && bytes == 0 && !parser_->got_some()) return Retry();
      return TransportFailed(ec, "reading the response");
    }
    auto res = parser_->release();
    bool keep = res.keep_alive() && conn_->buffer.size() == 0;
    if (keep) {
      client_->ReturnIdle(std::move(conn_));
    } else {
      conn_->Close();
      conn_.reset();
    }
    int status = static_cast<int>(res.result_int());
    if (route_->follow_redirects && IsRedirect(status) && redirects_ < route_->max_redirects) {
      auto location = res.find(http::field::location);
      if (location != res.end()) {
        std::string_view loc(location->value().data(), location->value().size());
        auto next = text::ResolveReference(url_, loc);
        if (!next.ok() || (next->scheme != "http" && next->scheme != "https")) {
          return Refuse(RefusalReason::kBadUrl, text::Cat("redirect to ", loc));
        }
        if (auto r = route_->policy.Check(*next)) {
          return Refuse(*r, text::Cat("redirect to ", next->ToString()));
        }
        return FollowRedirect(status, *std::move(next));
      }
    }
    OutboundResponse out;
    out.status_code = status;
    for (const auto& field : res) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.body = std::move(res.body());
    out.final_url = url_.ToString();
    out.redirects = redirects_;
    out.reused_connection = reused_;
    Finish(std::move(out));
  }

  void FollowRedirect(int status, text::Url next) {
    ++redirects_;
    // 303 always, and 301/302 after a POST, become a GET without a body (what browsers and
    // Python requests do); 307/308 repeat the request as it was.
    if (status == 303 ||
        ((status == 301 || status == 302) && method_ == protocol::HttpMethod::kPost)) {
      if (method_ != protocol::HttpMethod::kHead) method_ = protocol::HttpMethod::kGet;
      has_body_ = false;
      headers_.erase(
          std::remove_if(headers_.begin(), headers_.end(),
                         [](const auto& h) { return text::Lower(h.first) == "content-type"; }),
          headers_.end());
    }
    // Credentials are for the origin they were written for.
    if (next.scheme != url_.scheme || next.host != url_.host || next.port != url_.port) {
      headers_.erase(std::remove_if(headers_.begin(), headers_.end(),
                                    [](const auto& h) {
                                      std::string n = text::Lower(h.first);
                                      return n == "authorization" || n == "cookie" ||
                                             n == "proxy-authorization";
                                    }),
                     headers_.end());
    }
    url_ = std::move(next);
    retried_ = false;
    Hop();
  }

  void Retry() {
    retried_ = true;
    conn_->Close();
    conn_.reset();
    reused_ = false;
    Resolve();
  }

  void TransportFailed(const error_code& ec, const char* during) {
    Fail(HttpClientError::kUpstreamUnreachable,
         text::Cat("connection to ", url_.HostHeader(), " failed while ", during, ": ",
                   ec.message()));
  }

  void TimedOut() {
    Fail(HttpClientError::kUpstreamTimeout, text::Cat("no response from ", url_.HostHeader(),
                                                      " within ", request_.timeout.count(), " ms"));
  }

  void Refuse(RefusalReason reason, const std::string& what) {
    Fail(HttpClientError::kTargetNotAllowed,
         text::Cat("target not allowed: ", what, " (", RefusalReasonName(reason), ")"), reason);
  }

  void Fail(HttpClientError code, std::string message,
            std::optional<RefusalReason> refusal = std::nullopt) {
    if (conn_) {
      conn_->Close();
      conn_.reset();
    }
    Finish(OutboundError{code, std::move(message), refusal});
  }

  void Finish(OutboundResult result) {
    if (finished_) return;
    finished_ = true;
    StopIo();
    client_->Unregister(id_);
    if (!silent_ && !client_->closed()) done_(std::move(result));
  }

  friend class HttpClient;

  std::shared_ptr<HttpClient::Impl> client_;
  std::shared_ptr<const OutboundRouteSettings> route_;
  OutboundRequest request_;
  OutboundCallback done_;
  uint64_t id_ = 0;

 public:
  // Per-hop state, initialised from the request and changed by redirects.
  protocol::HttpMethod method_ = protocol::HttpMethod::kGet;
  bool has_body_ = false;
  std::vector<std::pair<std::string, std::string>> headers_;

 private:
  text::Url url_;
  std::string key_;
  SteadyClock::time_point deadline_;
  asio::steady_timer timer_;
  tcp::resolver resolver_;
  ConnectionPtr conn_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  int redirects_ = 0;
  bool reused_ = false;
  bool retried_ = false;
  bool timed_out_ = false;
  bool finished_ = false;
  bool silent_ = false;
};

ConnectionPtr HttpClient::Impl::TakeIdle(const std::string& key, const TargetPolicy& policy) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  auto now = SteadyClock::now();
  ConnectionPtr found;
  while (!list.empty() && !found) {
    ConnectionPtr c = std::move(list.back());
    list.pop_back();
    --idle_count_;
    if (now - c->idle_since >= options_.idle_timeout || !c->LooksAlive()) {
      c->Close();
      continue;
    }
    // Another route with wider address ranges may have opened it: judge it by this route's.
    if (policy.CheckAddress(c->remote)) {
      list.push_front(std::move(c));
      ++idle_count_;
      break;
    }
    found = std::move(c);
  }
  if (list.empty()) idle_.erase(it);
  return found;
}

void HttpClient::Impl::ReturnIdle(ConnectionPtr conn) {
  auto& list = idle_[conn->key];
  if (closed_ || list.size() >= options_.max_idle_per_origin ||
      idle_count_ >= options_.max_idle_total) {
    conn->Close();
    if (list.empty()) idle_.erase(conn->key);
    return;
  }
  conn->idle_since = SteadyClock::now();
  list.push_back(std::move(conn));
  ++idle_count_;
  ArmSweep();
}

void HttpClient::Impl::ArmSweep() {
  if (sweep_armed_ || idle_count_ == 0) return;
  sweep_armed_ = true;
  // Rounded to the idle timeout: a connection lives between one and two timeouts when unused.
  sweep_timer_.expires_after(options_.idle_timeout);
  sweep_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
    auto self = weak.lock();
    if (!self || ec) return;
    self->sweep_armed_ = false;
    self->Sweep();
  });
}

void HttpClient::Impl::Sweep() {
  auto now = SteadyClock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    while (!list.empty() && now - list.front()->idle_since >= options_.idle_timeout) {
      list.front()->Close();
      list.pop_front();
      --idle_count_;
    }
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  ArmSweep();
}

uint64_t HttpClient::Impl::Register(std::shared_ptr<Exchange> ex) {
  uint64_t id = next_id_++;
  ex->set_id(id);
  exchanges_.emplace(id, std::move(ex));
  return id;
}

void HttpClient::Impl::Cancel(uint64_t id) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  auto ex = std::move(it->second);
  exchanges_.erase(it);
  ex->Abort();
}

void HttpClient::Impl::Shutdown() {
  closed_ = true;
  auto exchanges = std::move(exchanges_);
  exchanges_.clear();
  for (auto& [id, ex] : exchanges) ex->Abort();
  for (auto& [key, list] : idle_) {
    for (auto& c : list) c->Close();
  }
  idle_.clear();
  idle_count_ = 0;
  sweep_timer_.cancel();
}

const char* HttpClientErrorName(HttpClientError error) {
  return protocol::BridgeErrorCodeName(ToBridgeErrorCode(error));
}

protocol::BridgeErrorCode ToBridgeErrorCode(HttpClientError error) {
  switch (error) {
    case HttpClientError::kTargetNotAllowed:
      return protocol::BridgeErrorCode::kTargetNotAllowed;
    case HttpClientError::kUpstreamTimeout:
      return protocol::BridgeErrorCode::kUpstreamTimeout;
    case HttpClientError::kUpstreamUnreachable:
      return protocol::BridgeErrorCode::kUpstreamUnreachable;
    case HttpClientError::kResponseTooLarge:
      return protocol::BridgeErrorCode::kResponseTooLarge;
    case HttpClientError::kRequestTooLarge:
      return protocol::BridgeErrorCode::kRequestTooLarge;
  }
  return protocol::BridgeErrorCode::kUpstreamUnreachable;
}

HttpClient::HttpClient(asio::io_context& ioc, HttpClientOptions options)
    : impl_(std::make_shared<Impl>(ioc, std::move(options))) {}

HttpClient::~HttpClient() { impl_->Shutdown(); }

uint64_t HttpClient::Send(std::shared_ptr<const OutboundRouteSettings> route,
                          OutboundRequest request, OutboundCallback done) {
  auto ex =
      std::make_shared<Exchange>(impl_, std::move(route), std::move(request), std::move(done));
  ex->method_ = ex->request_.method;
  ex->has_body_ = ex->request_.has_body;
  ex->headers_ = ex->request_.headers;
  uint64_t id = impl_->Register(ex);
  // Posted so that the callback never runs inside Send, even for an immediate refusal.
  asio::post(impl_->ioc(), [ex] {
    if (!ex->finished_) ex->Start();
  });
  return id;
}

void HttpClient::Cancel(uint64_t id) { impl_->Cancel(id); }
size_t HttpClient::in_flight() const { return impl_->in_flight(); }
size_t HttpClient::idle_connections() const { return impl_->idle(); }
uint64_t HttpClient::connections_opened() const { return impl_->opened; }
uint64_t HttpClient::connections_reused() const { return impl_->reused; }

}  // namespace wsgate::dataplane::outbound
