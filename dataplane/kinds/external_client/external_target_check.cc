// Kind external_client: the checks on a target before anything touches the network, the
// refusal answers, and ExternalConnector::Start, through which every attempt (the sessions' and
// the test-connection endpoint's) passes those checks first. The checks on the resolved and the
// connected addresses are the connector's (external_connector.cc).
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "dataplane/kinds/external_client/external_client_internal.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/protocol/external_client_codec.h"
#include "common/text/url.h"

namespace wsgate::dataplane::transport {

namespace external_client_internal {

using protocol::ExternalErrorCode;

ExternalConnector::Result Failure(ExternalErrorCode code, std::string message,
                                  std::optional<int> refusal) {
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
  auto url = text::ParseUrl(url_text);
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
std::string AddressUrl(const text::Url& url, const boost::asio::ip::address& address) {
  std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return url.scheme + "://" + host + ":" + std::to_string(url.port) + url.Target();
}

}  // namespace external_client_internal

namespace {

using external_client_internal::Failure;
using external_client_internal::PreCheck;
using protocol::ExternalErrorCode;

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
  const text::Url parsed = *text::ParseUrl(url);
  return external_client_internal::StartConnect(kinds, std::move(settings), parsed, protocols,
                                                headers, timeout, max_message_bytes,
                                                std::move(handlers), std::move(done));
}

}  // namespace wsgate::dataplane::transport
