// The outbound allow-list of a route: which URLs a client may make the gateway reach,
// and which resolved addresses it may connect to. Both checks exist because the first is made on
// what the client wrote and the second on what DNS answered: a name that matches the list can
// still resolve to 127.0.0.1 or 169.254.169.254.
//
// Immutable once built; safe to share between worker threads (every method is const).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/text/url.h"

namespace wsgate::dataplane::outbound {

// Why a target was refused. The names (RefusalReasonName) are stable: they become the `reason`
// label of wsgate_targets_refused_total.
enum class RefusalReason {
  kBadUrl,       // "bad_url": not a URL this gateway can parse unambiguously
  kScheme,       // "scheme": no rule for this scheme
  kHost,         // "host": no rule for this host (and port)
  kPath,         // "path": host allowed, path outside every prefix, or a dot segment
  kLoopback,     // "loopback": 127/8, ::1
  kPrivate,      // "private": 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10
  kLinkLocal,    // "link_local": 169.254/16 (incl. 169.254.169.254), fe80::/10
  kUnspecified,  // "unspecified": 0.0.0.0/8, ::
  kReserved,     // "reserved": multicast, 240/4, broadcast, ff00::/8
};
const char* RefusalReasonName(RefusalReason reason);

// Address ranges a route may explicitly open up (bit flags).
enum AddressRange : uint32_t {
  kRangeLoopback = 1u << 0,
  kRangePrivate = 1u << 1,
  kRangeLinkLocal = 1u << 2,
  kRangeUnspecified = 1u << 3,
  kRangeReserved = 1u << 4,
};

// Parses "loopback", "private", "link_local", "unspecified", "reserved".
absl::StatusOr<AddressRange> ParseAddressRange(std::string_view name);

// The range `address` falls in, or nullopt for an ordinary public address. IPv4-mapped
// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) IPv6 addresses are
// judged by the IPv4 address they carry.
std::optional<RefusalReason> ClassifyAddress(const boost::asio::ip::address& address);

// One allow-list entry: scheme + host pattern [+ port] [+ path prefix].
//   "https://api.example.com/v1"   only https, that host, port 443, paths /v1 and /v1/...
//   "https://*.example.com"        any subdomain (not example.com itself), port 443, any path
//   "http://127.0.0.1:8080/"       that address and port
//   "http://localhost:*"           any port
//   "https://*"                    any host on port 443 (the address ranges still apply)
struct TargetRule {
  std::string scheme;            // "http", "https", "ws" or "wss"
  std::string host_pattern;      // lowercase; exact, "*.suffix" or "*"
  std::optional<uint16_t> port;  // nullopt: any port ("*"); else explicit or the scheme default
  std::string path_prefix;       // "" or "/": any path
};
absl::StatusOr<TargetRule> ParseTargetRule(std::string_view text);

class TargetPolicy {
 public:
  TargetPolicy() = default;  // allows nothing
  TargetPolicy(std::vector<TargetRule> rules, uint32_t allowed_ranges)
      : rules_(std::move(rules)), allowed_ranges_(allowed_ranges) {}

  // Builds a policy from allow-list strings and range names; the first bad entry is the error.
  static absl::StatusOr<TargetPolicy> Create(const std::vector<std::string>& targets,
                                             const std::vector<std::string>& allowed_ranges);

  // The pure pre-connection check: nullopt when some rule allows the URL.
  std::optional<RefusalReason> Check(const text::Url& url) const;
  // Parses and checks; kBadUrl when `url` does not parse.
  std::optional<RefusalReason> Check(std::string_view url) const;

  // The check on an address about to be (or just) connected to: nullopt when it is public or its
  // range is allowed.
  std::optional<RefusalReason> CheckAddress(const boost::asio::ip::address& address) const;

  const std::vector<TargetRule>& rules() const { return rules_; }
  uint32_t allowed_ranges() const { return allowed_ranges_; }

 private:
  std::vector<TargetRule> rules_;
  uint32_t allowed_ranges_ = 0;
};

}  // namespace wsgate::dataplane::outbound
