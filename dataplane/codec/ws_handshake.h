// The WebSocket opening handshake as the proxy relay speaks it (RFC 6455 section 4), both sides:
// the 101 it answers a client with, the request it sends an upstream, and the upstream's answer.
// Pure functions over strings: no sockets, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgate::dataplane::relay {

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string WebSocketAccept(std::string_view key);

// A Sec-WebSocket-Key: the base64 of 16 bytes the caller drew from a strong generator.
std::string WebSocketKey(const uint8_t (&nonce)[16]);

// The request the relay sends to an upstream WebSocket server.
struct UpstreamRequest {
  std::string host;    // Host header value: host, or host:port when the port is not the default
  std::string target;  // origin-form: path plus query
  std::string key;     // Sec-WebSocket-Key (WebSocketKey)
  std::vector<std::string> subprotocols;  // offered in this order; no header when empty
  // Further headers, sent as given, in order (forwarded, configured, X-Forwarded-For).
  std::vector<std::pair<std::string, std::string>> headers;
};

// The request head, ending with the blank line. Header names and values that could split the
// head (CR, LF, or NUL in them; a name that is not an RFC 9110 token) are left out, and so are
// values with any other control character but HTAB, extra headers that this function writes
// itself (Host, Upgrade, Connection, Sec-WebSocket-Key/-Version/-Protocol) or that would offer
// an extension (Sec-WebSocket-Extensions), and subprotocols that are not tokens. `host`,
// `target` and `key` are written as given: the caller has them from a parsed request or config.
std::string BuildUpstreamRequest(const UpstreamRequest& request);

// The 101 Switching Protocols the relay answers a client with. `subprotocol` empty: no
// Sec-WebSocket-Protocol header. Includes "Server: wsgate".
std::string BuildSwitchingProtocols(std::string_view accept, std::string_view subprotocol);

enum class UpstreamAnswer {
  kIncomplete,  // need more bytes
  kAccepted,    // 101 with Upgrade: websocket, Connection: upgrade and the expected accept
  kRefused,     // any other status, or a 101 that is not a valid WebSocket answer
  kMalformed,   // not an HTTP/1.1 response head
  kTooLarge,    // no end of head within max_bytes
};

struct UpstreamResponse {
  UpstreamAnswer answer = UpstreamAnswer::kIncomplete;
  int status = 0;           // HTTP status when the head parsed
  std::string subprotocol;  // Sec-WebSocket-Protocol of an accepted answer; empty if none
  size_t head_bytes = 0;    // bytes of the input that make up the head (kAccepted, kRefused)
  std::string error;        // why it was refused / malformed, for a log line
};

// `bytes`: everything the upstream has sent so far on the connection. Bytes after the head
// (frames the upstream sent right after its 101) are not part of the head. A 101 that selects
// an extension is refused (the relay offers none). The subprotocol is returned as the upstream
// named it: checking that it is one of those offered is the caller's job.
UpstreamResponse ParseUpstreamResponse(std::string_view bytes, std::string_view expected_accept,
                                       size_t max_bytes = 16 * 1024);

}  // namespace wsgate::dataplane::relay
