// Parsing of upstream WebSocket URLs as a route configures them. Pure functions. Not the data
// plane's outbound-target parser (dataplane/protocol/url.h): that one takes http/https/ws/wss,
// drops fragments, normalises the host and percent-encodes the path; this one takes ws:// and
// wss://, keeps the URL as written, and its refusals are config errors with their own wording.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "dataplane/routing/route_config.h"

namespace wsgate::controlplane {

// Parses "ws[s]://host[:port][/path][?query]". The host is a DNS name, an IPv4 address or a
// bracketed IPv6 address (returned without the brackets); the port defaults to 80 (wss: 443)
// and must be 1..65535; an empty path becomes "/". Refused: any other scheme,
// user info, fragments, whitespace and control characters. Errors say what is wrong without a
// field name (the caller adds it).
absl::StatusOr<dataplane::UpstreamUrl> ParseWsUrl(std::string_view url);

}  // namespace wsgate::controlplane
