// The outbound target policy (dataplane/outbound/target_policy.h): its rule parser, and a fixed
// policy's Check on arbitrary URLs and addresses. Invariants: Check(text) is kBadUrl exactly when
// ParseUrl refuses the text, and otherwise the same as Check(parsed URL); a rule that parses
// makes a policy that can be created and checked; ClassifyAddress and CheckAddress agree on what
// is refused.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "dataplane/outbound/target_policy.h"
#include "common/text/url.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace outbound = wsgate::dataplane::outbound;
using wsgate::text::ParseUrl;

const outbound::TargetPolicy& FixedPolicy() {
  static const outbound::TargetPolicy policy = [] {
    auto p = outbound::TargetPolicy::Create(
        {"https://api.example.com/v1/", "http://*.example.org:8080", "wss://*", "ws://127.0.0.1"},
        {"loopback"});
    FUZZ_CHECK(p.ok());
    return *p;
  }();
  return policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const outbound::TargetPolicy& policy = FixedPolicy();

  const auto by_text = policy.Check(input);
  auto url = ParseUrl(input);
  if (!url.ok()) {
    FUZZ_CHECK(by_text == outbound::RefusalReason::kBadUrl);
  } else {
    FUZZ_CHECK(by_text == policy.Check(*url));
  }
  if (by_text) FUZZ_CHECK(outbound::RefusalReasonName(*by_text) != nullptr);

  // The input as a rule (first line) for a policy of its own, checked against the rest.
  const size_t nl = input.find('\n');
  auto rule = outbound::ParseTargetRule(input.substr(0, nl));
  if (rule.ok()) {
    FUZZ_CHECK(!rule->scheme.empty());
    auto own = outbound::TargetPolicy::Create({std::string(input.substr(0, nl))}, {});
    FUZZ_CHECK(own.ok());
    if (nl != std::string_view::npos) (void)own->Check(input.substr(nl + 1));
  }
  (void)outbound::ParseAddressRange(input);

  // The first 4 or 16 bytes as an address.
  if (size >= 16) {
    boost::asio::ip::address_v6::bytes_type b6;
    std::memcpy(b6.data(), data, 16);
    const boost::asio::ip::address a6{boost::asio::ip::address_v6(b6)};
    const auto c6 = outbound::ClassifyAddress(a6);
    const auto p6 = policy.CheckAddress(a6);
    if (!c6) FUZZ_CHECK(!p6);
  }
  if (size >= 4) {
    boost::asio::ip::address_v4::bytes_type b4;
    std::memcpy(b4.data(), data, 4);
    const boost::asio::ip::address a4{boost::asio::ip::address_v4(b4)};
    const auto c4 = outbound::ClassifyAddress(a4);
    const auto p4 = policy.CheckAddress(a4);
    if (!c4) FUZZ_CHECK(!p4);
    if (c4 && *c4 != outbound::RefusalReason::kLoopback) FUZZ_CHECK(p4 == c4);
  }
  return 0;
}
