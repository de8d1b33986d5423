#include "dataplane/outbound/target_policy.h"

#include <array>

#include "absl/status/status.h"
#include "common/text/ascii.h"

namespace wsgate::dataplane::outbound {
namespace {


std::optional<RefusalReason> ClassifyV4(uint32_t a) {
  auto in = [a](uint32_t net, int bits) {
    uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (in(0x00000000, 8)) return RefusalReason::kUnspecified;  // 0/8: "this host" on Linux
  if (in(0x7f000000, 8)) return RefusalReason::kLoopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) {
    return RefusalReason::kPrivate;
  }
  // Carrier-grade NAT space is as internal as RFC 1918 space from a gateway's point of view.
  if (in(0x64400000, 10)) return RefusalReason::kPrivate;
  if (in(0xa9fe0000, 16)) return RefusalReason::kLinkLocal;
  if (in(0xe0000000, 4) || in(0xf0000000, 4)) return RefusalReason::kReserved;
  return std::nullopt;
}

uint32_t V4At(const std::array<unsigned char, 16>& b, int i) {
  return (uint32_t{b[i]} << 24) | (uint32_t{b[i + 1]} << 16) | (uint32_t{b[i + 2]} << 8) |
         uint32_t{b[i + 3]};
}

std::optional<RefusalReason> ClassifyV6(const std::array<unsigned char, 16>& b) {
  bool zero_0_9 = true;
  for (int i = 0; i < 10; ++i) zero_0_9 = zero_0_9 && b[i] == 0;
  if (zero_0_9 && b[10] == 0xff && b[11] == 0xff) return ClassifyV4(V4At(b, 12));  // ::ffff:v4
  if (zero_0_9 && b[10] == 0 && b[11] == 0) {
    uint32_t low = V4At(b, 12);
    if (low == 0) return RefusalReason::kUnspecified;  // ::
    if (low == 1) return RefusalReason::kLoopback;     // ::1
    return ClassifyV4(low);                            // ::v4 (deprecated "compatible" form)
  }
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    bool zero_4_11 = true;
    for (int i = 4; i < 12; ++i) zero_4_11 = zero_4_11 && b[i] == 0;
    if (zero_4_11) return ClassifyV4(V4At(b, 12));  // NAT64 well-known prefix
  }
  if (b[0] == 0x20 && b[1] == 0x02) return ClassifyV4(V4At(b, 2));              // 6to4
  if ((b[0] & 0xfe) == 0xfc) return RefusalReason::kPrivate;                    // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return RefusalReason::kLinkLocal;  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return RefusalReason::kPrivate;    // fec0::/10
  if (b[0] == 0xff) return RefusalReason::kReserved;                            // multicast
  return std::nullopt;
}

uint32_t RangeBit(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kLoopback:
      return kRangeLoopback;
    case RefusalReason::kPrivate:
      return kRangePrivate;
    case RefusalReason::kLinkLocal:
      return kRangeLinkLocal;
    case RefusalReason::kUnspecified:
      return kRangeUnspecified;
    case RefusalReason::kReserved:
      return kRangeReserved;
    default:
      return 0;
  }
}

bool HostMatches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (text::StartsWith(pattern, "*.")) {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && text::EndsWith(host, suffix);
  }
  return pattern == host;
}

// A path some server could read as leaving the prefix: dot segments (also percent-encoded) and
// encoded slashes or backslashes.
bool HasAmbiguousPath(std::string_view path) {
  std::string lower = text::Lower(path);
  if (lower.find("%2f") != std::string::npos || lower.find("%5c") != std::string::npos) {
    return true;
  }
  std::string decoded;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (lower.compare(i, 3, "%2e") == 0) {
      decoded.push_back('.');
      i += 2;
    } else {
      decoded.push_back(lower[i]);
    }
  }
  size_t start = 0;
  while (start <= decoded.size()) {
    size_t slash = decoded.find('/', start);
    std::string_view seg = std::string_view(decoded).substr(start, slash - start);
    if (seg == "." || seg == "..") return true;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return false;
}

bool PathMatches(std::string_view prefix, std::string_view path) {
  if (prefix.empty()) return true;
  if (!text::StartsWith(path, prefix)) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

}  // namespace

const char* RefusalReasonName(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kBadUrl:
      return "bad_url";
    case RefusalReason::kScheme:
      return "scheme";
    case RefusalReason::kHost:
      return "host";
    case RefusalReason::kPath:
      return "path";
    case RefusalReason::kLoopback:
      return "loopback";
    case RefusalReason::kPrivate:
      return "private";
    case RefusalReason::kLinkLocal:
      return "link_local";
    case RefusalReason::kUnspecified:
      return "unspecified";
    case RefusalReason::kReserved:
      return "reserved";
  }
  return "unknown";
}

absl::StatusOr<AddressRange> ParseAddressRange(std::string_view name) {
  if (name == "loopback") return kRangeLoopback;
  if (name == "private") return kRangePrivate;
  if (name == "link_local") return kRangeLinkLocal;
  if (name == "unspecified") return kRangeUnspecified;
  if (name == "reserved") return kRangeReserved;
  return absl::InvalidArgumentError(text::Cat(
      "unknown address range '", name, "' (loopback, private, link_local, unspecified, reserved)"));
}

std::optional<RefusalReason> ClassifyAddress(const boost::asio::ip::address& address) {
  if (address.is_v4()) return ClassifyV4(address.to_v4().to_uint());
  return ClassifyV6(address.to_v6().to_bytes());
}

absl::StatusOr<TargetRule> ParseTargetRule(std::string_view input) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(text::Cat("allowed target '", input, "': ", why));
  };
  size_t sep = input.find("://");
  if (sep == std::string_view::npos) return bad("expected scheme://host[:port][/path]");
  TargetRule rule;
  rule.scheme = text::Lower(input.substr(0, sep));
  if (rule.scheme != "http" && rule.scheme != "https" && rule.scheme != "ws" &&
      rule.scheme != "wss") {
    return bad("scheme must be http, https, ws or wss");
  }
  std::string_view rest = input.substr(sep + 3);
  if (rest.find_first_of("?#@") != std::string_view::npos) {
    return bad("no query, fragment or user info in an allowed target");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  std::string_view host = authority;
  std::string_view port_text;
  bool has_port = false;
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
    has_port = true;
  }
  if (has_port && port_text == "*") {
    rule.port = std::nullopt;
  } else {
    // Let the URL parser validate the port (and give the scheme default when there is none).
    auto url = text::ParseUrl(
        text::Cat(rule.scheme, "://example.invalid", has_port ? ":" : "", port_text, "/"));
    if (!url.ok()) return bad("invalid port");
    rule.port = url->port;
  }
  if (host == "*") {
    rule.host_pattern = "*";
  } else {
    bool wildcard = text::StartsWith(host, "*.");
    std::string_view concrete = wildcard ? host.substr(2) : host;
    auto url = text::ParseUrl(text::Cat(rule.scheme, "://", concrete, "/"));
    if (!url.ok() || concrete.empty()) return bad("invalid host");
    if (wildcard && url->host_is_ipv6) return bad("a wildcard needs a domain name");
    rule.host_pattern = wildcard ? text::Cat("*.", url->host) : url->host;
  }
  if (!path.empty() && path != "/") {
    auto url = text::ParseUrl(text::Cat(rule.scheme, "://example.invalid", path));
    if (!url.ok()) return bad("invalid path");
    if (HasAmbiguousPath(url->path)) return bad("dot segments in path");
    rule.path_prefix = url->path;
  }
  return rule;
}

absl::StatusOr<TargetPolicy> TargetPolicy::Create(const std::vector<std::string>& targets,
                                                  const std::vector<std::string>& allowed_ranges) {
  std::vector<TargetRule> rules;
  for (const std::string& t : targets) {
    auto rule = ParseTargetRule(t);
    if (!rule.ok()) return rule.status();
    rules.push_back(*std::move(rule));
  }
  uint32_t ranges = 0;
  for (const std::string& r : allowed_ranges) {
    auto range = ParseAddressRange(r);
    if (!range.ok()) return range.status();
    ranges |= *range;
  }
  return TargetPolicy(std::move(rules), ranges);
}

std::optional<RefusalReason> TargetPolicy::Check(const text::Url& url) const {
  RefusalReason best = RefusalReason::kScheme;
  for (const TargetRule& rule : rules_) {
    if (rule.scheme != url.scheme) continue;
    if (!HostMatches(rule.host_pattern, url.host) || (rule.port && *rule.port != url.port)) {
      if (best == RefusalReason::kScheme) best = RefusalReason::kHost;
      continue;
    }
    if (rule.path_prefix.empty()) return std::nullopt;
    // A dot segment could climb out of the prefix once the server normalises the path.
    if (!HasAmbiguousPath(url.path) && PathMatches(rule.path_prefix, url.path)) {
      return std::nullopt;
    }
    best = RefusalReason::kPath;
  }
  return best;
}

std::optional<RefusalReason> TargetPolicy::Check(std::string_view url) const {
  auto parsed = text::ParseUrl(url);
  if (!parsed.ok()) return RefusalReason::kBadUrl;
  return Check(*parsed);
}

std::optional<RefusalReason> TargetPolicy::CheckAddress(
    const boost::asio::ip::address& address) const {
  std::optional<RefusalReason> range = ClassifyAddress(address);
  if (!range) return std::nullopt;
  if ((allowed_ranges_ & RangeBit(*range)) != 0) return std::nullopt;
  return range;
}

}  // namespace wsgate::dataplane::outbound
