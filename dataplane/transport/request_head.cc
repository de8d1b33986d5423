#include "dataplane/transport/request_head.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cctype>

namespace wsgate::dataplane::transport {
namespace http = boost::beast::http;

namespace {

std::string Lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void SplitCommaList(std::string_view value, std::vector<std::string>* out) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = Trim(value.substr(0, comma));
    if (!item.empty()) out->emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace

std::string RequestHead::Header(std::string_view lowercase_name) const {
  std::string joined;
  for (const auto& [name, value] : headers) {
    if (name != lowercase_name) continue;
    if (!joined.empty()) joined += ", ";
    joined += value;
  }
  return joined;
}

bool RequestHead::HasHeader(std::string_view lowercase_name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return h.first == lowercase_name; });
}

HeadParseResult ParseRequestHead(std::string_view bytes, size_t max_bytes) {
  HeadParseResult result;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(std::min<size_t>(max_bytes, UINT32_MAX)));
  parser.eager(false);  // stop at the end of the head; the body is none of our business

  // Only the first max_bytes go to the parser, as in ParseUpstreamResponse: Beast's header_limit
  // counts the request line and the fields separately, so alone it let a head of up to twice the
  // limit through as complete (found by tests/fuzz/fuzz_request_head.cc).
  const std::string_view window = bytes.substr(0, max_bytes);
  boost::beast::error_code ec;
  size_t used = parser.put(boost::asio::buffer(window.data(), window.size()), ec);
  if (ec == http::error::need_more) {
    result.status = bytes.size() >= max_bytes ? HeadStatus::kTooLarge : HeadStatus::kIncomplete;
    return result;
  }
  if (ec == http::error::header_limit) {
    result.status = HeadStatus::kTooLarge;
    return result;
  }
  if (ec || !parser.is_header_done()) {
    result.status = HeadStatus::kMalformed;
    return result;
  }

  const auto& req = parser.get();
  RequestHead& head = result.head;
  head.method = std::string(req.method_string());
  head.target = std::string(req.target());
  head.version = req.version();
  for (const auto& field : req) {
    head.headers.emplace_back(
        Lowercase(std::string_view(field.name_string().data(), field.name_string().size())),
        std::string(field.value().data(), field.value().size()));
  }
  head.is_websocket_upgrade = boost::beast::websocket::is_upgrade(req);
  for (const auto& field : req) {
    if (boost::beast::iequals(field.name_string(), "sec-websocket-protocol")) {
      SplitCommaList(std::string_view(field.value().data(), field.value().size()),
                     &head.subprotocols);
    }
  }
  if (head.is_websocket_upgrade) {
    using Problem = RequestHead::HandshakeProblem;
    if (!head.HasHeader("sec-websocket-version")) {
      head.handshake_problem = Problem::kNoVersion;
    } else if (Trim(head.Header("sec-websocket-version")) != "13") {
      head.handshake_problem = Problem::kBadVersion;
    } else if (!IsValidWebSocketKey(head.Header("sec-websocket-key"))) {
      head.handshake_problem = Problem::kBadKey;
    }
    head.websocket_handshake_plausible = head.handshake_problem == Problem::kNone;
  }
  result.head_bytes = used;
  result.status = HeadStatus::kComplete;
  return result;
}

bool IsValidWebSocketKey(std::string_view key) {
  key = Trim(key);
  // A repeated header joins as "a, b": more than one key is not a valid key either.
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  // The last character's 4 unused bits are not checked: lenient decoders accept them, and so
  // do the servers clients are tested against.
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    const bool b64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
    if (!b64) return false;
  }
  return true;
}

std::string_view TargetPath(std::string_view target) {
  size_t end = target.find_first_of("?#");
  return end == std::string_view::npos ? target : target.substr(0, end);
}

}  // namespace wsgate::dataplane::transport
