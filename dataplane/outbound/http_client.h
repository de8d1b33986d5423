// An asynchronous HTTP/1.1 client for the http_bridge route kind, on Boost.Beast.
//
// One HttpClient per worker, on the worker's io_context: resolve → check every resolved address
// against the route's TargetPolicy → connect (connect timeout) → re-check the address actually
// connected to → TLS handshake for https (SNI, host name verified unless the route's context
// turns verification off) → request → response (size cap) under one total deadline. Connections
// are kept alive and reused per (scheme, host, port, TLS context) from a small idle pool with
// idle expiry. Redirects are returned as they are unless the route follows them; then every hop
// goes through the same checks.
//
// Threading: not thread-safe. The worker thread that owns the io_context owns the client: it
// calls every method, and every callback runs on it. Nothing here blocks: DNS, connect, TLS and
// I/O are all asynchronous.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"
#include "dataplane/protocol/http_bridge_codec.h"

namespace wsgate::dataplane::outbound {

// The failure kinds, named as the bridge's answer codes (HttpClientErrorName).
enum class HttpClientError {
  kTargetNotAllowed,     // the URL, a resolved address or a redirect hop was refused
  kUpstreamTimeout,      // no complete response before the request's deadline
  kUpstreamUnreachable,  // resolve, connect (incl. connect timeout), TLS or transport failure
  kResponseTooLarge,     // response head or body above the cap
  kRequestTooLarge,      // request body above the cap
};
const char* HttpClientErrorName(HttpClientError error);
protocol::BridgeErrorCode ToBridgeErrorCode(HttpClientError error);

// What a route allows; built once at route set-up and shared by every request of the route (the
// shared_ptr keeps it alive across a route change while requests are in flight).
struct OutboundRouteSettings {
  TargetPolicy policy;
  // Used for https://. Null: https targets fail as unreachable.
  TlsContextPtr tls;
  uint64_t max_request_bytes = 1ull << 20;
  uint64_t max_response_bytes = 10ull << 20;
  bool follow_redirects = false;
  int max_redirects = 5;
};

struct OutboundRequest {
  protocol::HttpMethod method = protocol::HttpMethod::kGet;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;
  // Sent with has_body unless `headers` names a Content-Type.
  std::string default_content_type = "application/json";
  // Total: from Send() to the last byte of the (last) response. The caller applies route caps.
  std::chrono::milliseconds timeout{30000};
};

struct OutboundResponse {
  int status_code = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string final_url;  // after redirects
  int redirects = 0;
  bool reused_connection = false;  // the last hop went over a kept-alive connection
};

struct OutboundError {
  HttpClientError code;
  std::string message;
  std::optional<RefusalReason> refusal;  // set with kTargetNotAllowed
};

using OutboundResult = std::variant<OutboundResponse, OutboundError>;
using OutboundCallback = std::function<void(OutboundResult)>;

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{10000};
  size_t max_idle_per_origin = 4;
  size_t max_idle_total = 64;
  std::chrono::milliseconds idle_timeout{30000};
  uint32_t max_header_bytes = 64 * 1024;
  std::string user_agent = "wsgate";
};

class HttpClient {
 public:
  explicit HttpClient(boost::asio::io_context& ioc, HttpClientOptions options = {});
  // Aborts requests in flight (their callbacks are not called) and closes idle connections.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a request; `done` is called exactly once, later (never from inside Send), unless the
  // request is cancelled or the client destroyed first. Returns an id for Cancel.
  uint64_t Send(std::shared_ptr<const OutboundRouteSettings> route, OutboundRequest request,
                OutboundCallback done);
  // Aborts one request; its callback is not called. Unknown or finished ids are ignored.
  void Cancel(uint64_t id);

  size_t in_flight() const;
  size_t idle_connections() const;
  uint64_t connections_opened() const;
  uint64_t connections_reused() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace wsgate::dataplane::outbound
