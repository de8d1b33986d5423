// The WebSocket handshake codec (dataplane/codec/ws_handshake.h), both directions:
// - ParseUpstreamResponse, the parser of the upstream's answer, on arbitrary bytes (the whole
//   input after a control byte). Invariants: head_bytes lies within the input and the limit; a
//   parsed head gives the same answer from exactly its own bytes and with other bytes after it
//   (frames the upstream sent right after its 101); an accepted answer names its subprotocol.
// - BuildUpstreamRequest with subprotocols and extra headers cut from the input: whatever it
//   lets through, the transport's own request parser (request_head.h) reads back as one complete,
//   plausible WebSocket upgrade with the same key, offers and headers.
// - BuildSwitchingProtocols with a fuzzed subprotocol parses back as accepted.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/codec/ws_handshake.h"
#include "dataplane/transport/request_head.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace wsgate::dataplane::relay;  // NOLINT(google-build-using-namespace)
namespace transport = wsgate::dataplane::transport;

// RFC 6455 section 1.3's example key and its accept.
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

bool IsTokenChar(unsigned char c) {
  if (c <= 0x20 || c >= 0x7f) return false;
  return std::string_view("\"(),/:;<=>?@[\\]{}").find(static_cast<char>(c)) ==
         std::string_view::npos;
}
bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
           return IsTokenChar(static_cast<unsigned char>(c));
         });
}
bool IsFieldValue(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}
std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void CheckResponse(std::string_view bytes, size_t max_bytes) {
  const UpstreamResponse r = ParseUpstreamResponse(bytes, kAccept, max_bytes);
  FUZZ_CHECK(r.head_bytes <= bytes.size());
  FUZZ_CHECK(r.head_bytes <= max_bytes);
  if (r.answer == UpstreamAnswer::kIncomplete) {
    FUZZ_CHECK(bytes.size() < max_bytes);
    return;
  }
  if (r.answer == UpstreamAnswer::kAccepted) {
    FUZZ_CHECK(r.status == 101);
    FUZZ_CHECK(r.error.empty());
  } else {
    FUZZ_CHECK(!r.error.empty());
  }
  if (r.head_bytes == 0) return;  // kMalformed or kTooLarge before a head was read
  const std::string_view head = bytes.substr(0, r.head_bytes);
  const UpstreamResponse exact = ParseUpstreamResponse(head, kAccept, max_bytes);
  FUZZ_CHECK(exact.answer == r.answer);
  FUZZ_CHECK(exact.status == r.status);
  FUZZ_CHECK(exact.head_bytes == r.head_bytes);
  FUZZ_CHECK(exact.subprotocol == r.subprotocol);
  std::string longer(head);
  longer.append("\x81\x05hello", 7);  // a text frame right after the head
  const UpstreamResponse more = ParseUpstreamResponse(longer, kAccept, max_bytes + 7);
  FUZZ_CHECK(more.answer == r.answer);
  FUZZ_CHECK(more.head_bytes == r.head_bytes);
  FUZZ_CHECK(more.subprotocol == r.subprotocol);
}

// Cuts the input into fields at '\n'; the first ones are subprotocol offers until an empty field,
// then "name:value" headers.
UpstreamRequest RequestFrom(std::string_view input) {
  UpstreamRequest req;
  req.host = "upstream.example:8080";
  req.target = "/ws?x=1";
  req.key = std::string(kKey);
  bool in_headers = false;
  while (!input.empty()) {
    const size_t nl = input.find('\n');
    const std::string_view field = input.substr(0, nl);
    input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
    if (!in_headers) {
      if (field.empty()) {
        in_headers = true;
      } else {
        req.subprotocols.emplace_back(field);
      }
      continue;
    }
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    req.headers.emplace_back(std::string(field.substr(0, colon)),
                             std::string(field.substr(colon + 1)));
  }
  return req;
}

void CheckRequest(std::string_view input) {
  const UpstreamRequest req = RequestFrom(input);
  const std::string out = BuildUpstreamRequest(req);
  // Content-Length and Transfer-Encoding are not the builder's business (the caller's forwarded
  // and configured headers never carry them), but a bad value makes any HTTP parser refuse.
  for (const auto& [name, value] : req.headers) {
    const std::string lower = Lower(name);
    if (lower == "content-length" || lower == "transfer-encoding") return;
  }
  if (out.size() >= transport::kMaxRequestHeadBytes) return;
  const transport::HeadParseResult r = transport::ParseRequestHead(out);
  FUZZ_CHECK(r.status == transport::HeadStatus::kComplete);
  FUZZ_CHECK(r.head_bytes == out.size());
  const transport::RequestHead& head = r.head;
  FUZZ_CHECK(head.method == "GET");
  FUZZ_CHECK(head.target == req.target);
  FUZZ_CHECK(head.is_websocket_upgrade);
  FUZZ_CHECK(head.websocket_handshake_plausible);
  FUZZ_CHECK(head.Header("host") == req.host);
  FUZZ_CHECK(head.Header("sec-websocket-key") == req.key);
  // The offers that are tokens, in order.
  std::vector<std::string> offers;
  for (const std::string& p : req.subprotocols) {
    if (IsToken(p)) offers.push_back(p);
  }
  FUZZ_CHECK(head.subprotocols == offers);
  // The extra headers that are safe to send, in order, after the builder's own six or seven.
  std::vector<std::pair<std::string, std::string>> extra;
  for (const auto& [name, value] : req.headers) {
    const std::string lower = Lower(name);
    if (!IsToken(name) || !IsFieldValue(value)) continue;
    if (lower == "host" || lower == "upgrade" || lower == "connection" ||
        lower == "sec-websocket-key" || lower == "sec-websocket-version" ||
        lower == "sec-websocket-protocol" || lower == "sec-websocket-extensions") {
      continue;
    }
    extra.emplace_back(lower, std::string(Trim(value)));
  }
  const size_t own = offers.empty() ? 5 : 6;
  FUZZ_CHECK(head.headers.size() == own + extra.size());
  // Beast keeps the lines of one name together (a repeated name goes after its first line), so
  // only the order within each name is kept: compare stably sorted by name.
  std::vector<std::pair<std::string, std::string>> got(head.headers.begin() + own,
                                                       head.headers.end());
  const auto by_name = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(got.begin(), got.end(), by_name);
  std::stable_sort(extra.begin(), extra.end(), by_name);
  FUZZ_CHECK(got == extra);
}

void CheckSwitchingProtocols(std::string_view input) {
  const std::string sub(input.substr(0, input.find('\n')));
  if (!IsToken(sub)) return;
  const std::string answer = BuildSwitchingProtocols(kAccept, sub);
  const UpstreamResponse r = ParseUpstreamResponse(answer, kAccept);
  FUZZ_CHECK(r.answer == UpstreamAnswer::kAccepted);
  FUZZ_CHECK(r.head_bytes == answer.size());
  FUZZ_CHECK(r.subprotocol == sub);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (control % 3) {
    case 0:
      CheckResponse(input, 16 * 1024);
      CheckResponse(input, 1 + control);  // a small limit: kTooLarge with small inputs
      break;
    case 1:
      CheckRequest(input);
      break;
    default:
      CheckSwitchingProtocols(input);
      CheckResponse(input, 16 * 1024);
      break;
  }
  return 0;
}
