#include "dataplane/codec/ws_handshake.h"

#include "common/text/base64.h"
#include "common/text/token.h"

#include <openssl/evp.h>

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <cstdint>

namespace wsgate::dataplane::relay {
namespace http = boost::beast::http;

namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string Base64(const unsigned char* data, size_t size) {
  return text::Base64Encode(std::string_view(reinterpret_cast<const char*>(data), size));
}

using text::IsToken;

// RFC 9110 field-value: visible characters, obs-text, SP and HTAB. Refusing every other control
// character (not only CR, LF and NUL, which could split the head) keeps the upstream's own parser
// from answering 400 to a header the relay let through.
bool IsFieldValue(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}

// Headers BuildUpstreamRequest writes itself. A copy among the extra headers would give the
// upstream two Hosts or two keys; Sec-WebSocket-Extensions would offer an extension the relay
// cannot speak (the frame scanner refuses RSV bits).
bool IsHandshakeHeader(std::string_view name) {
  const boost::beast::string_view beast_name(name.data(), name.size());
  for (std::string_view own :
       {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
        "sec-websocket-protocol", "sec-websocket-extensions"}) {
    if (boost::beast::iequals(beast_name, {own.data(), own.size()})) return true;
  }
  return false;
}

std::string_view ToView(boost::beast::string_view s) { return {s.data(), s.size()}; }

using Response = http::response_parser<http::empty_body>::value_type;

// How many lines of `field` the response has, and the first one's value. (A plain walk over the
// fields: Beast 1.74's equal_range() spans list positions, so it would take in other fields that
// arrived between two lines of the same name.)
struct FieldValues {
  size_t count = 0;
  std::string_view first;
};

FieldValues Values(const Response& res, http::field field) {
  FieldValues v;
  for (const auto& f : res) {
    if (f.name() == field && v.count++ == 0) v.first = ToView(f.value());
  }
  return v;
}

// True if any `field` line of the response lists `token` (comma list, case-insensitive).
bool ListsToken(const Response& res, http::field field, std::string_view token) {
  for (const auto& f : res) {
    if (f.name() == field && http::token_list{f.value()}.exists({token.data(), token.size()})) {
      return true;
    }
  }
  return false;
}

// An upstream's value for an error message: quoted, and cut short so that a log line stays one.
std::string Quoted(std::string_view value) {
  constexpr size_t kMax = 64;
  if (value.size() <= kMax) return "'" + std::string(value) + "'";
  return "'" + std::string(value.substr(0, kMax)) + "...'";
}

UpstreamResponse Fail(UpstreamResponse r, UpstreamAnswer answer, std::string error) {
  r.answer = answer;
  r.error = std::move(error);
  return r;
}

}  // namespace

std::string WebSocketAccept(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kWebSocketGuid.size());
  input.append(key).append(kWebSocketGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  // EVP_Digest rather than SHA1(): the latter is deprecated in OpenSSL 3.
  if (EVP_Digest(input.data(), input.size(), digest, &digest_size, EVP_sha1(), nullptr) != 1) {
    return {};  // only when OpenSSL itself is broken; an empty accept never matches
  }
  return Base64(digest, digest_size);
}

std::string WebSocketKey(const uint8_t (&nonce)[16]) { return Base64(nonce, sizeof nonce); }

std::string BuildUpstreamRequest(const UpstreamRequest& request) {
  std::string out;
  out.reserve(256);
  out.append("GET ").append(request.target).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(request.host).append("\r\n");
  out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  out.append("Sec-WebSocket-Key: ").append(request.key).append("\r\n");
  out.append("Sec-WebSocket-Version: 13\r\n");
  bool first = true;
  for (const std::string& protocol : request.subprotocols) {
    if (!IsToken(protocol)) continue;  // RFC 6455 section 4.1: each offer is a token
    out.append(first ? "Sec-WebSocket-Protocol: " : ", ").append(protocol);
    first = false;
  }
  if (!first) out.append("\r\n");
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || !IsFieldValue(value) || IsHandshakeHeader(name)) continue;
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

std::string BuildSwitchingProtocols(std::string_view accept, std::string_view subprotocol) {
  std::string out;
  out.reserve(160);
  out.append("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
  out.append("Sec-WebSocket-Accept: ").append(accept).append("\r\n");
  if (!subprotocol.empty()) {
    out.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
  }
  out.append("Server: wsgate\r\n\r\n");
  return out;
}

UpstreamResponse ParseUpstreamResponse(std::string_view bytes, std::string_view expected_accept,
                                       size_t max_bytes) {
  UpstreamResponse result;
  // Only the first max_bytes go to the parser: the head must end within them. Beast's own
  // header_limit counts the start line and the fields separately, so it alone would let a head
  // of nearly twice the limit through.
  const std::string_view window = bytes.substr(0, max_bytes);
  http::response_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(std::min<size_t>(max_bytes, UINT32_MAX)));
  parser.eager(false);  // stop at the blank line: what follows is WebSocket frames, not a body

  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(window.data(), window.size()), ec);
  if (ec == http::error::need_more || ec == http::error::header_limit) {
    if (bytes.size() >= max_bytes) {
      return Fail(result, UpstreamAnswer::kTooLarge,
                  "no end of the response head within " + std::to_string(max_bytes) + " bytes");
    }
    result.answer = UpstreamAnswer::kIncomplete;
    return result;
  }
  if (ec || !parser.is_header_done()) {
    return Fail(result, UpstreamAnswer::kMalformed,
                "not an HTTP response head: " + (ec ? ec.message() : std::string("incomplete")));
  }

  const auto& res = parser.get();
  result.status = static_cast<int>(res.result_int());
  result.head_bytes = used;
  if (res.version() != 11) {
    return Fail(result, UpstreamAnswer::kMalformed,
                "HTTP/" + std::to_string(res.version() / 10) + "." +
                    std::to_string(res.version() % 10) + " response (status " +
                    std::to_string(result.status) + "), not HTTP/1.1");
  }
  if (result.status != 101) {
    return Fail(result, UpstreamAnswer::kRefused,
                "status " + std::to_string(result.status) + " instead of 101");
  }
  if (!ListsToken(res, http::field::upgrade, "websocket")) {
    return Fail(result, UpstreamAnswer::kRefused, "101 without Upgrade: websocket");
  }
  if (!ListsToken(res, http::field::connection, "upgrade")) {
    return Fail(result, UpstreamAnswer::kRefused, "101 without Connection: upgrade");
  }
  const FieldValues accept = Values(res, http::field::sec_websocket_accept);
  if (accept.count == 0) {
    return Fail(result, UpstreamAnswer::kRefused, "101 without Sec-WebSocket-Accept");
  }
  if (accept.count > 1) {
    return Fail(result, UpstreamAnswer::kRefused, "101 with more than one Sec-WebSocket-Accept");
  }
  if (accept.first.empty() || accept.first != expected_accept) {
    return Fail(result, UpstreamAnswer::kRefused,
                "Sec-WebSocket-Accept " + Quoted(accept.first) + " does not match the key");
  }
  // The relay never offers an extension, so any extension in the answer is one it cannot speak
  // (RFC 6455 section 4.1, point 5).
  const FieldValues extensions = Values(res, http::field::sec_websocket_extensions);
  if (extensions.count > 0) {
    return Fail(result, UpstreamAnswer::kRefused,
                "101 selects an extension that was not offered: " + Quoted(extensions.first));
  }
  const FieldValues protocol = Values(res, http::field::sec_websocket_protocol);
  if (protocol.count > 1) {
    return Fail(result, UpstreamAnswer::kRefused, "101 with more than one Sec-WebSocket-Protocol");
  }
  if (protocol.count == 1) {
    if (protocol.first.find(',') != std::string_view::npos) {
      return Fail(result, UpstreamAnswer::kRefused,
                  "101 selects more than one subprotocol: " + Quoted(protocol.first));
    }
    if (!IsToken(protocol.first)) {
      return Fail(result, UpstreamAnswer::kRefused,
                  "101 with an invalid Sec-WebSocket-Protocol: " + Quoted(protocol.first));
    }
    result.subprotocol = std::string(protocol.first);
  }
  result.answer = UpstreamAnswer::kAccepted;
  return result;
}

}  // namespace wsgate::dataplane::relay
