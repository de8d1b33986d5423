// A strict parser for the absolute URLs a client names as an outbound target (http, https, ws,
// wss). Strict on purpose: anything a downstream resolver or server could read differently from
// us (user info, backslashes, control characters, percent-encoded hosts) is rejected, because the
// allow-list decides on what this parser says the host and path are.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wsgate::text {

struct Url {
  std::string scheme;  // lowercase: "http", "https", "ws" or "wss"
  // Lowercase registered name without a trailing dot, or an IP literal without brackets
  // ("127.0.0.1", "::1").
  std::string host;
  bool host_is_ipv6 = false;
  uint16_t port = 0;  // explicit or the scheme's default
  bool explicit_port = false;
  std::string path;   // starts with '/'; "/" when the URL has none
  std::string query;  // without the '?'; empty when none
  bool has_query = false;

  bool is_secure() const { return scheme == "https" || scheme == "wss"; }
  // "/path?query": the HTTP request target.
  std::string Target() const;
  // "host" or "host:port" (brackets for IPv6) as sent in a Host header: the port only when it is
  // not the scheme's default.
  std::string HostHeader() const;
  // The full URL again, normalised (lowercase scheme and host, no fragment).
  std::string ToString() const;
};

// Parses an absolute URL. The fragment, if any, is dropped (it is never sent).
absl::StatusOr<Url> ParseUrl(std::string_view text);

// Resolves a redirect's Location (absolute, scheme-relative, absolute-path or relative
// reference) against the URL it came from, and parses the result.
absl::StatusOr<Url> ResolveReference(const Url& base, std::string_view location);

uint16_t DefaultPort(std::string_view scheme);

}  // namespace wsgate::text
