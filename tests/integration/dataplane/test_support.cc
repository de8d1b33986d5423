#include "tests/integration/dataplane/test_support.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "dataplane/transport/data_plane_impl.h"

namespace wsgate::dataplane::testing {

namespace {
constexpr size_t kMaxMessage = 64u << 20;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
}  // namespace

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// WsClient

WsClient::WsClient() = default;
WsClient::~WsClient() = default;

template <typename Start>
beast::error_code WsClient::Run(Start start) {
  beast::error_code result = net::error::would_block;
  bool done = false;
  start([&](beast::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc_.restart();
  while (!done && ioc_.run_one() > 0) {
  }
  return result;
}

HandshakeResult WsClient::Connect(uint16_t port, const std::string& target,
                                  const std::vector<std::pair<std::string, std::string>>& headers,
                                  const std::vector<std::string>& subprotocols) {
  HandshakeResult r;
  ws_ = std::make_unique<websocket::stream<beast::tcp_stream>>(ioc_);
  ws_->read_message_max(kMaxMessage);
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
  beast::get_lowest_layer(*ws_).expires_after(kOpTimeout);
  r.ec = Run([&](auto handler) { beast::get_lowest_layer(*ws_).async_connect(ep, handler); });
  if (r.ec) return r;
  beast::get_lowest_layer(*ws_).expires_never();
  ws_->set_option(websocket::stream_base::timeout{kOpTimeout, kOpTimeout, false});
  ws_->set_option(
      websocket::stream_base::decorator([headers, subprotocols](websocket::request_type& req) {
        for (const auto& [name, value] : headers) req.insert(name, value);
        std::string offer;
        for (const auto& p : subprotocols) offer += (offer.empty() ? "" : ", ") + p;
        if (!offer.empty()) req.set(http::field::sec_websocket_protocol, offer);
      }));
  r.ec = Run([&](auto handler) {
    ws_->async_handshake(r.response, "127.0.0.1:" + std::to_string(port), target, handler);
  });
  r.status = r.response.result_int();
  r.body = r.response.body();
  r.subprotocol = std::string(r.response[http::field::sec_websocket_protocol]);
  return r;
}

beast::error_code WsClient::Send(const std::string& data, bool text) {
  ws_->text(text);
  return Run([&](auto handler) { ws_->async_write(net::buffer(data), handler); });
}

beast::error_code WsClient::SendFragmented(const std::vector<std::string>& parts, bool text) {
  ws_->text(text);
  ws_->auto_fragment(false);
  for (size_t i = 0; i < parts.size(); ++i) {
    bool fin = i + 1 == parts.size();
    beast::error_code ec =
        Run([&](auto handler) { ws_->async_write_some(fin, net::buffer(parts[i]), handler); });
    if (ec) return ec;
  }
  return {};
}

Received WsClient::Read() {
  Received r;
  r.ec = Run([&](auto handler) { ws_->async_read(buffer_, handler); });
  if (!r.ec) {
    r.data = beast::buffers_to_string(buffer_.data());
    r.text = ws_->got_text();
  }
  buffer_.consume(buffer_.size());
  return r;
}

beast::error_code WsClient::Close(uint16_t code, const std::string& reason) {
  websocket::close_reason cr;
  cr.code = code;
  cr.reason = reason;
  return Run([&](auto handler) { ws_->async_close(cr, handler); });
}

websocket::close_reason WsClient::ReadUntilClosed() {
  for (int i = 0; i < 100000; ++i) {
    Received r = Read();
    // A terminal close (1009, 1011, ...) may be followed by the TCP close before Beast's
    // reply goes out: the close frame is in reason() whatever error ends the read.
    if (r.ec) return ws_->reason();
  }
  return {};
}

void WsClient::Abort() {
  beast::error_code ec;
  auto& socket = beast::get_lowest_layer(*ws_).socket();
  socket.set_option(net::socket_base::linger(true, 0), ec);
  socket.close(ec);
}

std::string RawExchange(uint16_t port, const std::string& request, beast::error_code* ec_out,
                        std::chrono::milliseconds timeout) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  std::string received;
  beast::error_code ec;
  stream.expires_after(timeout);
  char buf[4096];
  std::function<void()> read_more = [&] {
    stream.async_read_some(net::buffer(buf), [&](beast::error_code rec, size_t n) {
      received.append(buf, n);
      if (rec) {
        ec = rec;
        return;
      }
      read_more();
    });
  };
  stream.async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&](beast::error_code cec) {
        if (cec) {
          ec = cec;
          return;
        }
        net::async_write(stream, net::buffer(request), [&](beast::error_code wec, size_t) {
          // A server that answers early may reset the rest
          // of the write: still read what it sent.
          (void)wec;
          read_more();
        });
      });
  ioc.run();
  if (ec_out) *ec_out = ec;
  return received;
}

int StatusOf(const std::string& response) {
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

// ---------------------------------------------------------------------------------------------
// EchoUpstream

class EchoUpstream::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(EchoUpstream* owner, tcp::socket socket) : owner_(owner), ws_(std::move(socket)) {}

  void Start() {
    auto self = shared_from_this();
    http::async_read(ws_.next_layer(), buffer_, req_,
                     [self](beast::error_code ec, size_t) { self->OnRequest(ec); });
  }

  void Drop() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

 private:
  void OnRequest(beast::error_code ec) {
    if (ec) return End(false);
    std::map<std::string, std::string> headers;
    std::vector<std::string> offers;
    for (const auto& field : req_) {
      std::string name = Lower(std::string(field.name_string()));
      std::string value(field.value());
      auto& slot = headers[name];
      slot = slot.empty() ? value : slot + ", " + value;
    }
    std::string chosen;
    {
      std::string offer = headers["sec-websocket-protocol"];
      size_t pos = 0;
      while (pos <= offer.size() && !owner_->choose_subprotocol_.empty()) {
        size_t comma = offer.find(',', pos);
        std::string item =
            offer.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        item.erase(0, item.find_first_not_of(' '));
        item.erase(item.find_last_not_of(' ') + 1);
        if (item == owner_->choose_subprotocol_) chosen = item;
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    }
    {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      owner_->requests_.push_back(std::move(headers));
    }
    ws_.set_option(websocket::stream_base::decorator([chosen](websocket::response_type& res) {
      if (!chosen.empty()) res.set(http::field::sec_websocket_protocol, chosen);
    }));
    ws_.read_message_max(kMaxMessage);
    auto self = shared_from_this();
    ws_.async_accept(req_, [self](beast::error_code aec) {
      if (aec) return self->End(false);
      self->owner_->connections_++;
      self->RunScript(0);
    });
  }

  void RunScript(size_t i) {
    if (i == owner_->on_open_.size()) return Read();
    const std::string& step = owner_->on_open_[i];
    auto self = shared_from_this();
    if (step.rfind("cmd:close:", 0) == 0) {
      CloseWith(step.substr(10));
      return;
    }
    ws_.text(true);
    out_ = step;
    ws_.async_write(net::buffer(out_), [self, i](beast::error_code ec, size_t) {
      if (ec) return self->End(false);
      self->RunScript(i + 1);
    });
  }

  // `spec` is "<code>:<reason>".
  void CloseWith(const std::string& spec) {
    size_t colon = spec.find(':');
    websocket::close_reason cr;
    cr.code = static_cast<uint16_t>(std::stoi(spec.substr(0, colon)));
    cr.reason = colon == std::string::npos ? "" : spec.substr(colon + 1);
    auto self = shared_from_this();
    ws_.async_close(cr, [self](beast::error_code) { self->End(false); });
  }

  void Read() {
    auto self = shared_from_this();
    ws_.async_read(buffer_, [self](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return End(ec == websocket::error::closed);
    std::string data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    bool text = ws_.got_text();
    auto self = shared_from_this();
    if (text && data.rfind("cmd:close:", 0) == 0) {
      CloseWith(data.substr(10));
      return;
    }
    if (text && data == "cmd:drop") {
      beast::error_code lec;
      beast::get_lowest_layer(ws_).socket().set_option(net::socket_base::linger(true, 0), lec);
      Drop();
      return End(false);
    }
    ws_.text(text);
    out_ = std::move(data);
    ws_.async_write(net::buffer(out_), [self](beast::error_code wec, size_t) {
      if (wec) return self->End(false);
      self->Read();
    });
  }

  void End(bool got_close) {
    if (ended_) return;
    ended_ = true;
    std::lock_guard<std::mutex> lock(owner_->mu_);
    if (got_close) owner_->closes_.push_back(ws_.reason());
    owner_->ended_++;
    owner_->cv_.notify_all();
  }

  EchoUpstream* owner_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::string out_;
  bool ended_ = false;
};

EchoUpstream::EchoUpstream(std::string choose_subprotocol, std::vector<std::string> on_open)
    : choose_subprotocol_(std::move(choose_subprotocol)),
      on_open_(std::move(on_open)),
      acceptor_(ioc_) {
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  Accept();
  thread_ = std::thread([this] { ioc_.run(); });
}

EchoUpstream::~EchoUpstream() {
  net::post(ioc_, [this] {
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto& weak : sessions_) {
      if (auto s = weak.lock()) s->Drop();
    }
  });
  ioc_.stop();
  thread_.join();
}

std::string EchoUpstream::url(const std::string& path) const {
  return "ws://127.0.0.1:" + std::to_string(port_) + path;
}

void EchoUpstream::Accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    auto session = std::make_shared<Session>(this, std::move(socket));
    sessions_.push_back(session);
    session->Start();
    Accept();
  });
}

std::vector<std::map<std::string, std::string>> EchoUpstream::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::optional<websocket::close_reason> EchoUpstream::WaitForClose(
    size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return closes_.size() >= n; })) return std::nullopt;
  return closes_[n - 1];
}

size_t EchoUpstream::ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_;
}

// ---------------------------------------------------------------------------------------------
// SilentListener, ClosedPort

SilentListener::SilentListener() : acceptor_(ioc_) {
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  Accept();
  thread_ = std::thread([this] { ioc_.run(); });
}

SilentListener::~SilentListener() {
  ioc_.stop();
  thread_.join();
}

void SilentListener::Accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    held_.push_back(std::make_unique<tcp::socket>(std::move(socket)));
    Accept();
  });
}

uint16_t ClosedPort() {
  net::io_context ioc;
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

// ---------------------------------------------------------------------------------------------
// Gateway

UpstreamUrl MakeUpstream(uint16_t port, const std::string& path) {
  UpstreamUrl u;
  u.url = "ws://127.0.0.1:" + std::to_string(port) + path;
  u.host = "127.0.0.1";
  u.port = port;
  u.path_and_query = path;
  return u;
}

Gateway::Gateway(int workers) : workers_(workers), stats_(workers) {
  health_.set_ready(true);
  if (std::getenv("WSGATE_TEST_DEBUG") != nullptr) spdlog::set_level(spdlog::level::debug);
}

Gateway::~Gateway() {
  if (!dp_) return;
  dp_->StopAccepting();
  dp_->CloseAll(1001, "test over");
  dp_->Stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
}

std::shared_ptr<RouteConfig> Gateway::Route(const std::string& name, const std::string& path,
                                            RouteKind kind) {
  auto r = std::make_shared<RouteConfig>();
  r->name = name;
  r->path = path;
  r->kind = kind;
  r->stats = stats_.ForRoute(name);
  return r;
}

std::shared_ptr<RouteConfig> Gateway::Echo(const std::string& name, const std::string& path) {
  return Route(name, path, RouteKind::kEcho);
}

std::shared_ptr<RouteConfig> Gateway::Proxy(const std::string& name, const std::string& path,
                                            std::vector<UpstreamUrl> upstreams) {
  auto r = Route(name, path, RouteKind::kWebSocket);
  r->websocket.upstreams = std::move(upstreams);
  return r;
}

void Gateway::Start(std::vector<std::shared_ptr<RouteConfig>> routes,
                    std::chrono::milliseconds head_timeout) {
  std::vector<std::shared_ptr<const RouteConfig>> c(routes.begin(), routes.end());
  auto snapshot = std::make_shared<const Snapshot>(1, std::move(c));
  DataPlaneOptions options;
  options.listen_address = "127.0.0.1";
  options.port = 0;
  options.workers = workers_;
  transport::WorkerOptions worker_options;
  worker_options.head_timeout = head_timeout;
  auto dp = transport::StartDataPlane(options, snapshot, &stats_, &health_, worker_options);
  ASSERT_TRUE(dp.ok()) << dp.status();
  dp_ = std::move(*dp);
  ASSERT_NE(dp_->port(), 0);
}

void Gateway::Apply(uint64_t version, std::vector<std::shared_ptr<RouteConfig>> routes) {
  std::vector<std::shared_ptr<const RouteConfig>> c(routes.begin(), routes.end());
  dp_->ApplySnapshot(std::make_shared<const Snapshot>(version, std::move(c)));
}

uint64_t Outcome(const RouteTotals& t, ConnectionOutcome o) {
  return t.connections[static_cast<int>(o)];
}

uint64_t Closes(const RouteTotals& t, uint16_t code) { return t.closes[CloseCodeBucket(code)]; }

}  // namespace wsgate::dataplane::testing
