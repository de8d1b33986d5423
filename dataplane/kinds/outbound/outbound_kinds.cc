#include "dataplane/kinds/outbound/outbound_kinds.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ssl/host_name_verification.hpp>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>
#include <variant>

#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/protocol/external_client_codec.h"
#include "dataplane/kinds/external_client/external_client_session.h"
#include "dataplane/kinds/http_bridge/http_bridge_session.h"
#include "dataplane/transport/http_response.h"

namespace wsgate::dataplane::transport {

namespace {

// The client leg of a websocketpp server connection.
class WsClientLink : public ClientLink {
 public:
  WsClientLink(ServerConnectionPtr con, RouteWorkerCounters* counters,
               std::shared_ptr<sessions::SessionTraffic> traffic)
      : con_(std::move(con)), counters_(counters), traffic_(std::move(traffic)) {}

  void SendText(const std::string& text) override {
    if (con_->get_state() != websocketpp::session::state::open) return;
    // An error means the leg is closing: the text is dropped.
    websocketpp::lib::error_code ec = con_->send(text, websocketpp::frame::opcode::text);
    if (ec) return;
    counters_->CountMessage(Direction::kToClient, text.size());
    if (traffic_) traffic_->CountOut(text.size());
  }

  void Close(uint16_t code, const std::string& reason) override {
    websocketpp::lib::error_code ec;  // invalid_state: already closing
    con_->close(static_cast<websocketpp::close::status::value>(code), reason, ec);
  }

 private:
  ServerConnectionPtr con_;
  RouteWorkerCounters* counters_;
  std::shared_ptr<sessions::SessionTraffic> traffic_;
};

void RespondJson(ServerEndpoint::connection_type& c, int status, const nlohmann::json& body) {
  RespondHttp(c, status, body.dump(), "application/json");
}

// The value of `name` in the query of a request target ("" when absent). Route names need no
// percent-decoding (the config validator allows no character that would be encoded).
std::string QueryParameter(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ExternalClientRegistry

void ExternalClientRegistry::AddClient(const std::string& client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ++clients_[client_id];
}

void ExternalClientRegistry::RemoveClient(const std::string& client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(client_id);
  if (it != clients_.end() && --it->second <= 0) clients_.erase(it);
}

bool ExternalClientRegistry::TryAddExternal(const std::string& route, const std::string& client_id,
                                            uint32_t max) {
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t& n = external_[{route, client_id}];
  if (n >= max) return false;
  ++n;
  return true;
}

void ExternalClientRegistry::RemoveExternal(const std::string& route,
                                            const std::string& client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = external_.find({route, client_id});
  if (it == external_.end()) return;
  if (--it->second == 0) external_.erase(it);
}

ExternalClientRegistry::Listing ExternalClientRegistry::List() const {
  Listing out;
  std::set<std::string> external;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, n] : clients_) out.active_connections.push_back(id);
    for (const auto& [key, n] : external_) external.insert(key.second);
  }
  out.external_connections.assign(external.begin(), external.end());
  return out;
}

bool ExternalClientRegistry::AllowTest(const std::string& address,
                                       std::chrono::steady_clock::time_point now) {
  const auto window = std::chrono::minutes(1);
  std::lock_guard<std::mutex> lock(mu_);
  // Bounded memory under a flood of addresses: sweep the ones with nothing in the window.
  if (++tests_seen_ % 1024 == 0) {
    for (auto it = tests_.begin(); it != tests_.end();) {
      if (it->second.empty() || now - it->second.back() >= window) {
        it = tests_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::deque<std::chrono::steady_clock::time_point>& recent = tests_[address];
  while (!recent.empty() && now - recent.front() >= window) recent.pop_front();
  if (recent.size() >= kTestsPerMinute) return false;
  recent.push_back(now);
  return true;
}

// ---------------------------------------------------------------------------------------------
// OutboundKinds

OutboundKinds::OutboundKinds(boost::asio::io_context& ioc, ClientEndpoint& ws_client,
                             int worker_index, std::shared_ptr<ExternalClientRegistry> registry,
                             bool debug_events)
    : ioc_(ioc),
      ws_client_(ws_client),
      worker_index_(worker_index),
      registry_(registry ? std::move(registry) : std::make_shared<ExternalClientRegistry>()),
      debug_events_(debug_events) {}

OutboundKinds::~OutboundKinds() = default;

outbound::HttpClient& OutboundKinds::http() {
  if (!http_) {
    // The client's defaults keep 4 idle connections per origin: with more requests than that in
    // flight to one target (many bridge clients, one API), every answer beyond the fourth would
    // close its connection and the next request open a new one. Keep as many as a worker is
    // likely to have in flight; idle ones still expire after idle_timeout.
    outbound::HttpClientOptions options;
    options.max_idle_per_origin = 128;
    options.max_idle_total = 512;
    http_ = std::make_unique<outbound::HttpClient>(ioc_, options);
  }
  return *http_;
}

TlsClientEndpoint& OutboundKinds::tls_ws_client() {
  if (!tls_ws_client_) {
    tls_ws_client_ = std::make_unique<TlsClientEndpoint>();
    tls_ws_client_->clear_access_channels(websocketpp::log::alevel::all);
    tls_ws_client_->clear_error_channels(websocketpp::log::elevel::all);
    websocketpp::lib::error_code ec;
    tls_ws_client_->init_asio(&ioc_, ec);
    if (ec) {
      // Only fails when called twice on one endpoint: a programming error.
      spdlog::critical("worker {}: websocketpp init_asio (TLS client) failed: {}", worker_index_,
                       ec.message());
      std::terminate();
    }
    tls_ws_client_->set_user_agent("wsgate");
    tls_ws_client_->set_tls_init_handler([this](websocketpp::connection_hdl) {
      return std::exchange(next_tls_context_, nullptr);  // null: creation fails
    });
    tls_ws_client_->set_socket_init_handler(
        [this](websocketpp::connection_hdl,
               boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& s) {
          std::string host = std::exchange(next_tls_host_, std::string());
          if (host.empty()) return;
          boost::system::error_code vec;
          s.set_verify_callback(boost::asio::ssl::host_name_verification(host), vec);
        });
  }
  return *tls_ws_client_;
}

void OutboundKinds::PrepareTls(std::shared_ptr<boost::asio::ssl::context> ctx, std::string host) {
  const bool verify = ctx && outbound::VerifiesPeer(*ctx);
  next_tls_context_ = std::move(ctx);
  next_tls_host_ = verify ? std::move(host) : std::string();
}

std::shared_ptr<KindSession> OutboundKinds::Create(
    std::shared_ptr<const RouteConfig> route,
    const std::vector<std::pair<std::string, std::string>>& params, ServerConnectionPtr client,
    RouteWorkerCounters* counters, std::shared_ptr<sessions::SessionTraffic> traffic) {
  auto link = std::make_unique<WsClientLink>(std::move(client), counters, std::move(traffic));
  switch (route->kind) {
    case RouteKind::kHttpBridge:
      return std::make_shared<HttpBridgeSession>(*this, std::move(route), std::move(link),
                                                 counters);
    case RouteKind::kExternalClient: {
      std::string client_id;
      for (const auto& [name, value] : params) {
        if (name == route->external_client.client_id_param) client_id = value;
      }
      return std::make_shared<ExternalClientSession>(*this, std::move(route), std::move(client_id),
                                                     std::move(link), counters);
    }
    default:
      return nullptr;
  }
}

bool OutboundKinds::HandleHttp(const ServerConnectionPtr& con, std::string_view path,
                               const SnapshotPtr& snapshot) {
  constexpr std::string_view kActive = "/api/websocket/active-connections";
  constexpr std::string_view kTest = "/api/websocket/test-connection";
  if (path != kActive && path != kTest) return false;
  ServerEndpoint::connection_type& c = *con;
  const std::string method = c.get_request().get_method();
  if (path == kActive) {
    if (method != "GET") {
      RespondJson(c, 405, {{"detail", "Method Not Allowed"}});
      return true;
    }
    ExternalClientRegistry::Listing l = registry_->List();
    RespondJson(c, 200,
                {{"active_connections", l.active_connections},
                 {"external_connections", l.external_connections}});
    return true;
  }
  if (method != "POST") {
    RespondJson(c, 405, {{"detail", "Method Not Allowed"}});
    return true;
  }
  // At most kTestsPerMinute probes per client address, before any other work is done.
  boost::system::error_code aec;
  const auto remote = c.get_raw_socket().remote_endpoint(aec);
  const std::string address = aec ? std::string("unknown") : remote.address().to_string();
  if (!registry_->AllowTest(address, std::chrono::steady_clock::now())) {
    RespondJson(c, 429,
                {{"status", "error"},
                 {"message", "Too many connection tests from this address (at most " +
                                 std::to_string(ExternalClientRegistry::kTestsPerMinute) +
                                 " per minute)"}});
    c.replace_header("Retry-After", "60");
    return true;
  }
  // `?route=NAME` picks the external_client route whose allow-list and timeout apply; without
  // it, the first external_client route in name order.
  const std::string wanted = QueryParameter(c.get_resource(), "route");
  std::shared_ptr<const RouteConfig> route;
  if (snapshot) {
    for (const auto& r : snapshot->routes) {
      if (r->kind != RouteKind::kExternalClient) continue;
      if (!wanted.empty() && r->name != wanted) continue;
      route = r;
      break;
    }
  }
  if (!route) {
    RespondJson(c, 404,
                {{"status", "error"},
                 {"message", wanted.empty() ? "no external_client route"
                                            : "no external_client route of that name"}});
    return true;
  }
  // The body is the seed's {url, protocols, headers}: the connect_external command without its
  // type, so the same parser (and its header checks) applies.
  nlohmann::json body = nlohmann::json::parse(c.get_request_body(), nullptr, false);
  std::string url;
  if (body.is_object()) {
    if (body.contains("url") && body["url"].is_string()) url = body["url"].get<std::string>();
    body["type"] = "connect_external";
  }
  protocol::ExternalCommand command =
      body.is_object() ? protocol::ParseExternalCommand(body.dump())
                       : protocol::ExternalCommand(protocol::ExternalCommandError{
                             "Invalid request: expected a JSON object"});
  auto* connect = std::get_if<protocol::ConnectExternal>(&command);
  if (connect == nullptr) {
    const auto* bad = std::get_if<protocol::ExternalCommandError>(&command);
    RespondJson(
        c, 400,
        {{"status", "error"}, {"message", bad ? bad->message : "Invalid request"}, {"url", url}});
    return true;
  }
  if (c.defer_http_response()) {
    RespondJson(c, 500, {{"status", "error"}, {"message", "cannot defer the response"}});
    return true;
  }
  ServerConnectionPtr held = con;
  ExternalConnector::Start(
      *this, route->outbound, connect->url, connect->protocols, connect->headers,
      route->external_client.connect_timeout, route->limits.max_message_bytes, {},
      [held, url](ExternalConnector::Result r) {
        if (r.ok) {
          r.leg->Close(1000, "connection test");
          RespondJson(*held, 200,
                      {{"status", "success"},
                       {"message", "WebSocket connection test successful"},
                       {"url", url}});
        } else {
          RespondJson(*held, 200,
                      {{"status", "error"},
                       {"message", r.message},
                       {"code", protocol::ExternalErrorCodeName(
                                    static_cast<protocol::ExternalErrorCode>(r.code))},
                       {"url", url}});
        }
        websocketpp::lib::error_code ec;  // the client may be gone: nothing to answer
        held->send_http_response(ec);
      });
  return true;
}

}  // namespace wsgate::dataplane::transport
