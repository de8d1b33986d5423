// Parsing of an HTTP/1.1 request head that the transport has peeked (not consumed) from a freshly
// accepted socket, so that it can pick the route and start the upstream leg before websocketpp
// reads the same bytes. A pure function over bytes: no sockets, trivial to fuzz.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgate::dataplane::transport {

// The largest request head we read (request line + headers + blank line). websocketpp itself
// answers 431 above 16000 bytes, so anything we refuse here it refuses too.
constexpr size_t kMaxRequestHeadBytes = 16 * 1024;

struct RequestHead {
  std::string method;
  std::string target;     // origin-form, query string included
  unsigned version = 11;  // 10 or 11
  // Every header in arrival order; names lowercased, values as received.
  std::vector<std::pair<std::string, std::string>> headers;

  // GET, HTTP/1.1, "Connection: upgrade" and "Upgrade: websocket" (RFC 6455 section 4.2.1).
  bool is_websocket_upgrade = false;
  // What is wrong with an upgrade request's RFC 6455 fields (section 4.2.1), checked the same
  // way for every route kind before anything is opened for the connection. kNone when the
  // request is not an upgrade at all.
  enum class HandshakeProblem {
    kNone,
    kNoVersion,   // no Sec-WebSocket-Version (Hixie-76 and other pre-RFC drafts): 400
    kBadVersion,  // a version other than 13 (hybi-07/08...): 426 with "Sec-WebSocket-Version: 13"
    kBadKey,      // Sec-WebSocket-Key missing or not the base64 of 16 bytes: 400
  };
  HandshakeProblem handshake_problem = HandshakeProblem::kNone;
  // An upgrade request with no handshake problem.
  bool websocket_handshake_plausible = false;
  // Sec-WebSocket-Protocol offers, in order, split on commas and trimmed.
  std::vector<std::string> subprotocols;

  // All values of header `lowercase_name` joined with ", " (RFC 9110 section 5.3); empty if
  // absent.
  std::string Header(std::string_view lowercase_name) const;
  bool HasHeader(std::string_view lowercase_name) const;
};

enum class HeadStatus {
  kComplete,    // `head` is filled in
  kIncomplete,  // need more bytes
  kTooLarge,    // no end of head within max_bytes
  kMalformed,   // not a valid HTTP/1.x request head
};

struct HeadParseResult {
  HeadStatus status = HeadStatus::kIncomplete;
  RequestHead head;
  size_t head_bytes = 0;  // bytes of `bytes` that make up the head (when complete)
};

// `bytes` is everything received so far, from the first byte of the connection.
HeadParseResult ParseRequestHead(std::string_view bytes, size_t max_bytes = kMaxRequestHeadBytes);

// True when `key` is a valid Sec-WebSocket-Key: the base64 encoding of 16 bytes (24 characters,
// the last two "=="), surrounding spaces allowed.
bool IsValidWebSocketKey(std::string_view key);

// The path of a request target, without query string or fragment.
std::string_view TargetPath(std::string_view target);

}  // namespace wsgate::dataplane::transport
