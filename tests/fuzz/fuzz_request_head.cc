// The HTTP/1.1 request head parser the transport runs on the bytes it peeks from a freshly
// accepted socket (dataplane/transport/request_head.h). Invariants: head_bytes lies within the
// input; a complete head parses the same from exactly its own bytes, and one byte short of them it
// is incomplete; written out again (request line and the headers as parsed) it parses to the same
// method, target, version, headers and WebSocket verdict.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/transport/request_head.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using wsgate::dataplane::transport::HeadParseResult;
using wsgate::dataplane::transport::HeadStatus;
using wsgate::dataplane::transport::ParseRequestHead;
using wsgate::dataplane::transport::RequestHead;

void CheckSame(const RequestHead& a, const RequestHead& b) {
  FUZZ_CHECK(a.method == b.method);
  FUZZ_CHECK(a.target == b.target);
  FUZZ_CHECK(a.version == b.version);
  FUZZ_CHECK(a.headers == b.headers);
  FUZZ_CHECK(a.is_websocket_upgrade == b.is_websocket_upgrade);
  FUZZ_CHECK(a.handshake_problem == b.handshake_problem);
  FUZZ_CHECK(a.websocket_handshake_plausible == b.websocket_handshake_plausible);
  FUZZ_CHECK(a.subprotocols == b.subprotocols);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // A small limit too, so the kTooLarge paths are reached with small inputs.
  for (size_t max_bytes : {wsgate::dataplane::transport::kMaxRequestHeadBytes, size_t{64}}) {
    const HeadParseResult r = ParseRequestHead(bytes, max_bytes);
    if (r.status != HeadStatus::kComplete) {
      FUZZ_CHECK(r.head_bytes == 0);
      continue;
    }
    const RequestHead& head = r.head;
    FUZZ_CHECK(r.head_bytes > 0 && r.head_bytes <= size);
    FUZZ_CHECK(r.head_bytes <= max_bytes);
    FUZZ_CHECK(head.version == 10 || head.version == 11);
    FUZZ_CHECK(!head.method.empty());
    FUZZ_CHECK(head.websocket_handshake_plausible ==
               (head.is_websocket_upgrade &&
                head.handshake_problem == RequestHead::HandshakeProblem::kNone));
    if (!head.is_websocket_upgrade) {
      FUZZ_CHECK(head.handshake_problem == RequestHead::HandshakeProblem::kNone);
    }
    for (const auto& [name, value] : head.headers) {
      FUZZ_CHECK(!name.empty());
      for (char c : name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      FUZZ_CHECK(value.find('\r') == std::string::npos && value.find('\n') == std::string::npos);
    }
    std::string_view path = wsgate::dataplane::transport::TargetPath(head.target);
    FUZZ_CHECK(path.size() <= head.target.size());

    // Exactly the head's bytes: the same head. One byte fewer: not complete yet.
    const HeadParseResult exact = ParseRequestHead(bytes.substr(0, r.head_bytes), max_bytes);
    FUZZ_CHECK(exact.status == HeadStatus::kComplete);
    FUZZ_CHECK(exact.head_bytes == r.head_bytes);
    CheckSame(head, exact.head);
    const HeadParseResult short_one =
        ParseRequestHead(bytes.substr(0, r.head_bytes - 1), max_bytes);
    FUZZ_CHECK(short_one.status == HeadStatus::kIncomplete ||
               short_one.status == HeadStatus::kTooLarge);

    // Written out again from what was parsed: the same head.
    std::string again = head.method + " " + head.target + " HTTP/1." +
                        (head.version == 11 ? "1" : "0") + "\r\n";
    for (const auto& [name, value] : head.headers) again += name + ": " + value + "\r\n";
    again += "\r\n";
    const HeadParseResult re = ParseRequestHead(again, again.size() + 1);
    FUZZ_CHECK(re.status == HeadStatus::kComplete);
    FUZZ_CHECK(re.head_bytes == again.size());
    CheckSame(head, re.head);
  }
  return 0;
}
