// The data plane's public route-building API: what a control plane needs, beyond the plain route
// types of routing/route_config.h, to build a route the data plane can run. These are the parts
// only the data plane knows how to make: an outbound allow-list policy with its TLS trust store,
// the TLS context of wss:// upstreams, and the burst a message rate gets when none is configured. The control plane includes this
// header, data_plane.h and routing/, never outbound/, limits/ or other internals, so that the
// data plane's implementation can change (or move to another process) behind it.
//
// Runs on the control plane's thread: SetTls reads files, which a worker never does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::dataplane {

enum class TlsVerify {
  kSystemStore,  // the system's trust store (/etc/ssl/certs): the default
  kCaFile,       // only the CAs in a PEM file
  kOff,          // no verification: only when a route says so explicitly
};

// The allow-list, address ranges, TLS and caps of an http_bridge or external_client route
// (RouteConfig::outbound). Each Add* checks one entry; the caller names the field in its error.
class OutboundRouteBuilder {
 public:
  OutboundRouteBuilder();
  ~OutboundRouteBuilder();
  OutboundRouteBuilder(const OutboundRouteBuilder&) = delete;
  OutboundRouteBuilder& operator=(const OutboundRouteBuilder&) = delete;

  // One allowed target, e.g. "https://api.example.com/v1", "wss://*.example.com:*". Returns its
  // scheme ("http", "https", "ws" or "wss") so the caller can refuse one its kind cannot use.
  absl::StatusOr<std::string> AddTarget(std::string_view rule);
  // One address range a target may resolve into: "loopback", "private", "link_local",
  // "unspecified", "reserved" (public addresses are always allowed).
  absl::Status AddAddressRange(std::string_view name);
  // Loads the trust store now. On an error (a CA file that cannot be read or parsed) the route
  // can still be built: its TLS targets are then unreachable, which is what a rebuild wants
  // when a file vanished after admission; a new route should be refused instead.
  absl::Status SetTls(TlsVerify verify, const std::string& ca_file);
  // 0 keeps the built-in default (1 MiB request, 10 MiB response; 5 redirects).
  void SetBodyCaps(uint64_t max_request_bytes, uint64_t max_response_bytes);
  void SetRedirects(bool follow, uint32_t max_redirects);

  // The settings, shared by every request in flight on the route. Call once.
  std::shared_ptr<const outbound::OutboundRouteSettings> Build();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The TLS client context of a route's wss:// upstreams (WebSocketProxySettings::tls), loaded now
// (reads `ca_file`): TLS 1.2+, peer verification per `verify`. An error says why.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeUpstreamTls(
    TlsVerify verify, const std::string& ca_file);

// The burst of a connection's message rate limit when the route sets a rate and no burst.
uint32_t DefaultMessageBurst(double messages_per_second);

}  // namespace wsgate::dataplane
