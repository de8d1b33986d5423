// Private to the .cc files of dataplane/kinds/external_client/: what the session (commands,
// connect, relay), the connector and the target checks share. Nothing else includes this.
//
// Threading: everything here runs on the worker thread that owns the session or the connector.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/kinds/external_client/external_client_session.h"
#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/protocol/external_client_codec.h"
#include "common/text/url.h"
#include "dataplane/transport/tls_client_config.h"
#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport::external_client_internal {

inline protocol::Clock::time_point Now() { return protocol::Clock::now(); }

// external_target_check.cc

ExternalConnector::Result Failure(protocol::ExternalErrorCode code, std::string message,
                                  std::optional<int> refusal = std::nullopt);

// The checks made before anything touches the network: the allow-list on the URL as written,
// and the address ranges when the host is an IP literal.
std::optional<ExternalConnector::Result> PreCheck(const outbound::OutboundRouteSettings& settings,
                                                  const std::string& url_text);

// The answer to a target whose addresses are all refused (see the definition for why it names
// the range only).
ExternalConnector::Result AddressRefused(outbound::RefusalReason reason);

// The URL websocketpp connects to: the checked address as an IP literal.
std::string AddressUrl(const text::Url& url, const boost::asio::ip::address& address);

// external_connector.cc: the attempt for a URL that passed PreCheck (ExternalConnector::Start
// has checked it), on the worker's ws:// or wss:// client endpoint by the URL's scheme.
std::shared_ptr<ExternalConnector> StartConnect(
    OutboundKinds& kinds, std::shared_ptr<const outbound::OutboundRouteSettings> settings,
    const text::Url& url, const std::vector<std::string>& protocols,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::chrono::milliseconds timeout, uint64_t max_message_bytes,
    ExternalConnector::Handlers handlers, ExternalConnector::Done done);

// external_client_relay.cc: the open leg the connector hands over once the handshake is done.
std::shared_ptr<ExternalLeg> MakeLeg(ClientEndpoint::connection_ptr con);
std::shared_ptr<ExternalLeg> MakeLeg(TlsClientEndpoint::connection_ptr con);

}  // namespace wsgate::dataplane::transport::external_client_internal
