// Test peers for the data-plane integration tests, built on Boost.Beast (a WebSocket
// implementation independent of websocketpp): a client, an echo upstream server, a silent TCP
// listener, plus a helper that starts a DataPlane on port 0 with hand-built routes.
//
// Every network operation has a deadline (beast::tcp_stream expiry): a broken gateway fails the
// test instead of hanging it.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/health_state.h"
#include "dataplane/data_plane.h"
#include "dataplane/routing/route_config.h"
#include "dataplane/routing/snapshot.h"
#include "dataplane/stats/route_stats.h"

namespace wsgate::dataplane::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

constexpr std::chrono::seconds kOpTimeout{20};

// Polls `pred` until it holds or `timeout` passes (for state the test cannot be told about,
// such as counters updated by a worker after the peer saw the effect).
bool WaitFor(const std::function<bool()>& pred,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// ---------------------------------------------------------------------------------------------
struct HandshakeResult {
  beast::error_code ec;
  int status = 0;
  std::string body;
  std::string subprotocol;
  http::response<http::string_body> response;
};

struct Received {
  beast::error_code ec;
  std::string data;
  bool text = false;
};

// A blocking WebSocket client. Not thread-safe: one test thread uses it.
class WsClient {
 public:
  WsClient();
  ~WsClient();

  HandshakeResult Connect(uint16_t port, const std::string& target,
                          const std::vector<std::pair<std::string, std::string>>& headers = {},
                          const std::vector<std::string>& subprotocols = {});
  beast::error_code Send(const std::string& data, bool text = true);
  // Sends one message as several frames.
  beast::error_code SendFragmented(const std::vector<std::string>& parts, bool text = true);
  Received Read();
  beast::error_code Close(uint16_t code, const std::string& reason);
  // Reads until the gateway closes; returns the close frame it sent (code 0 if none).
  websocket::close_reason ReadUntilClosed();
  // Drops the TCP connection without a close frame.
  void Abort();

  websocket::stream<beast::tcp_stream>& stream() { return *ws_; }

 private:
  template <typename Start>
  beast::error_code Run(Start start);

  net::io_context ioc_;
  std::unique_ptr<websocket::stream<beast::tcp_stream>> ws_;
  beast::flat_buffer buffer_;
};

// Sends raw bytes on a fresh connection, then reads until the server closes (or the deadline).
// Returns everything received; `ec` is the read error that ended it (eof normally).
std::string RawExchange(uint16_t port, const std::string& request, beast::error_code* ec = nullptr,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
// Parses the status code out of an HTTP response ("HTTP/1.1 404 ..."), 0 if none.
int StatusOf(const std::string& response);

// ---------------------------------------------------------------------------------------------
// A WebSocket echo server on 127.0.0.1:0, one thread. Text messages starting with "cmd:" are
// commands: "cmd:close:<code>:<reason>" closes with that code, "cmd:drop" drops the TCP
// connection without a close frame. Records every upgrade request and every close it receives.
class EchoUpstream {
 public:
  // `choose_subprotocol`: answer with this subprotocol when the client offers it.
  // `on_open`: steps run right after the handshake, before echoing: a text message to send, or
  // a "cmd:close:<code>:<reason>" command.
  explicit EchoUpstream(std::string choose_subprotocol = "", std::vector<std::string> on_open = {});
  ~EchoUpstream();

  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/up") const;

  // Headers (lowercase name -> value) of each upgrade request, in arrival order.
  std::vector<std::map<std::string, std::string>> requests() const;
  int connections() const { return connections_.load(); }
  // Waits for the n-th (1-based) close received from a peer; nullopt on timeout.
  std::optional<websocket::close_reason> WaitForClose(
      size_t n = 1, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Waits until a connection ended without a close frame (peer vanished) or with one; returns
  // the number of sessions that ended.
  size_t ended() const;

 private:
  class Session;
  void Accept();

  const std::string choose_subprotocol_;
  const std::vector<std::string> on_open_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> connections_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::map<std::string, std::string>> requests_;
  std::vector<websocket::close_reason> closes_;
  size_t ended_ = 0;
  std::vector<std::weak_ptr<Session>> sessions_;
};

// Accepts TCP connections and never answers them.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  uint16_t port() const { return port_; }

 private:
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<tcp::socket>> held_;
  uint16_t port_ = 0;
  std::thread thread_;
  void Accept();
};

// A port on 127.0.0.1 where nothing listens (bound, then released).
uint16_t ClosedPort();

// ---------------------------------------------------------------------------------------------
UpstreamUrl MakeUpstream(uint16_t port, const std::string& path = "/up");

// A DataPlane on 127.0.0.1:0 with hand-built routes.
class Gateway {
 public:
  explicit Gateway(int workers = 2);
  ~Gateway();

  // Registers the route's counters and returns it, ready to be put in a snapshot.
  std::shared_ptr<RouteConfig> Echo(const std::string& name, const std::string& path);
  std::shared_ptr<RouteConfig> Proxy(const std::string& name, const std::string& path,
                                     std::vector<UpstreamUrl> upstreams);
  std::shared_ptr<RouteConfig> Route(const std::string& name, const std::string& path,
                                     RouteKind kind);

  // Starts the data plane with these routes (version 1). Fails the test on error.
  void Start(std::vector<std::shared_ptr<RouteConfig>> routes,
             std::chrono::milliseconds head_timeout = std::chrono::milliseconds(10000));
  void Apply(uint64_t version, std::vector<std::shared_ptr<RouteConfig>> routes);

  uint16_t port() const { return dp_->port(); }
  DataPlane& dp() { return *dp_; }
  StatsRegistry& stats() { return stats_; }
  common::HealthState& health() { return health_; }
  RouteTotals Totals(const std::string& route) { return stats_.ForRoute(route)->Fold(); }

 private:
  const int workers_;
  StatsRegistry stats_;
  common::HealthState health_;
  std::unique_ptr<DataPlane> dp_;
};

uint64_t Outcome(const RouteTotals& t, ConnectionOutcome o);
uint64_t Closes(const RouteTotals& t, uint16_t code);

}  // namespace wsgate::dataplane::testing
