#include "dataplane/route_building.h"

#include <utility>
#include <vector>

#include "dataplane/limits/token_bucket.h"
#include "dataplane/outbound/http_client.h"
#include "dataplane/outbound/target_policy.h"
#include "dataplane/outbound/tls.h"

namespace wsgate::dataplane {

struct OutboundRouteBuilder::State {
  std::vector<outbound::TargetRule> rules;
  uint32_t ranges = 0;
  std::shared_ptr<outbound::OutboundRouteSettings> settings =
      std::make_shared<outbound::OutboundRouteSettings>();
};

OutboundRouteBuilder::OutboundRouteBuilder() : state_(std::make_unique<State>()) {}
OutboundRouteBuilder::~OutboundRouteBuilder() = default;

absl::StatusOr<std::string> OutboundRouteBuilder::AddTarget(std::string_view rule) {
  absl::StatusOr<outbound::TargetRule> parsed = outbound::ParseTargetRule(rule);
  if (!parsed.ok()) return parsed.status();
  std::string scheme = parsed->scheme;
  state_->rules.push_back(*std::move(parsed));
  return scheme;
}

absl::Status OutboundRouteBuilder::AddAddressRange(std::string_view name) {
  absl::StatusOr<outbound::AddressRange> range = outbound::ParseAddressRange(name);
  if (!range.ok()) return range.status();
  state_->ranges |= *range;
  return absl::OkStatus();
}

namespace {

absl::StatusOr<outbound::TlsContextPtr> MakeContext(TlsVerify verify, const std::string& ca_file) {
  outbound::TlsSettings tls;
  switch (verify) {
    case TlsVerify::kSystemStore: tls.verify = outbound::TlsSettings::Verify::kSystemStore; break;
    case TlsVerify::kCaFile: tls.verify = outbound::TlsSettings::Verify::kCaFile; break;
    case TlsVerify::kOff: tls.verify = outbound::TlsSettings::Verify::kOff; break;
  }
  tls.ca_file = ca_file;
  return outbound::MakeTlsContext(tls);
}

}  // namespace

absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeUpstreamTls(
    TlsVerify verify, const std::string& ca_file) {
  return MakeContext(verify, ca_file);
}

absl::Status OutboundRouteBuilder::SetTls(TlsVerify verify, const std::string& ca_file) {
  absl::StatusOr<outbound::TlsContextPtr> ctx = MakeContext(verify, ca_file);
  if (!ctx.ok()) {
    state_->settings->tls = nullptr;  // documented meaning: TLS targets are unreachable
    return ctx.status();
  }
  state_->settings->tls = *std::move(ctx);
  return absl::OkStatus();
}

void OutboundRouteBuilder::SetBodyCaps(uint64_t max_request_bytes, uint64_t max_response_bytes) {
  if (max_request_bytes != 0) state_->settings->max_request_bytes = max_request_bytes;
  if (max_response_bytes != 0) state_->settings->max_response_bytes = max_response_bytes;
}

void OutboundRouteBuilder::SetRedirects(bool follow, uint32_t max_redirects) {
  state_->settings->follow_redirects = follow;
  if (max_redirects != 0) state_->settings->max_redirects = static_cast<int>(max_redirects);
}

std::shared_ptr<const outbound::OutboundRouteSettings> OutboundRouteBuilder::Build() {
  state_->settings->policy = outbound::TargetPolicy(std::move(state_->rules), state_->ranges);
  return std::move(state_->settings);
}

uint32_t DefaultMessageBurst(double messages_per_second) {
  return static_cast<uint32_t>(limits::TokenBucket::DefaultBurst(messages_per_second));
}

}  // namespace wsgate::dataplane
