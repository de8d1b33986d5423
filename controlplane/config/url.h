// Upstream WebSocket URLs as a route configures them: the one URL parser (common/text/url.h)
// with the rules of a config field on top. ws:// and wss:// only, no fragment, and the URL kept
// as written for status and logs. Pure functions.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::controlplane {

// Parses "ws[s]://host[:port][/path][?query]". The host is a DNS name (lowercased), an IPv4
// address or a bracketed IPv6 address (returned without the brackets); the port defaults to 80
// (wss: 443) and must be 1..65535; an empty path becomes "/". Refused: any other scheme, user
// info, fragments, whitespace and control characters. Errors say what is wrong without a field
// name (the caller adds it).
absl::StatusOr<dataplane::UpstreamUrl> ParseWsUrl(std::string_view url);

}  // namespace wsgate::controlplane
