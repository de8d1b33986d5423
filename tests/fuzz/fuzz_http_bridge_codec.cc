// The HTTP bridge's seed JSON codec (dataplane/protocol/http_bridge_codec.h): the client's
// request message, and the answers built from it. Invariants: a parsed request has a URL, header
// names and values that cannot split an HTTP head, a body only for the methods that send one; an
// error carries a message; every answer built (a response with the input as body and headers, an
// error with the input as message) is valid JSON text with the request's id.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "dataplane/protocol/http_bridge_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace protocol = wsgate::dataplane::protocol;

bool HasSplitter(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

void CheckJson(const std::string& text, const std::optional<std::string>& id_json) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!j.is_discarded());
  FUZZ_CHECK(j.is_object());
  if (id_json) {
    FUZZ_CHECK(j.contains("id"));
    FUZZ_CHECK(j["id"] == nlohmann::json::parse(*id_json));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  protocol::BridgeParseLimits limits;
  limits.max_depth = 8;
  for (const auto& parsed :
       {protocol::ParseBridgeRequest(input), protocol::ParseBridgeRequest(input, limits)}) {
    if (const auto* req = std::get_if<protocol::BridgeRequest>(&parsed)) {
      // (url may be empty: "#frag" with the fragment dropped; the policy check refuses it.)
      FUZZ_CHECK(req->has_body || req->body.empty());
      if (req->has_body) FUZZ_CHECK(nlohmann::json::accept(req->body));
      for (const auto& [name, value] : req->headers) {
        FUZZ_CHECK(!name.empty());
        FUZZ_CHECK(!HasSplitter(name) && !HasSplitter(value));
      }
      if (req->timeout_ms) FUZZ_CHECK(*req->timeout_ms > 0);
      if (req->id_json) FUZZ_CHECK(nlohmann::json::accept(*req->id_json));
      protocol::BridgeHttpResponse response;
      response.status_code = 200;
      response.headers = req->headers;
      response.body = std::string(input);  // any bytes: the answer must still be JSON
      CheckJson(protocol::BuildBridgeResponse(response, req->id_json), req->id_json);
      response.head_request = true;
      CheckJson(protocol::BuildBridgeResponse(response, req->id_json), req->id_json);
      FUZZ_CHECK(protocol::HttpMethodName(req->method) != nullptr);
    } else {
      const auto& err = std::get<protocol::BridgeError>(parsed);
      FUZZ_CHECK(!err.message.empty());
      if (err.id_json) FUZZ_CHECK(nlohmann::json::accept(*err.id_json));
      CheckJson(protocol::BuildBridgeError(err), err.id_json);
      CheckJson(protocol::BuildBridgeError(err.code, input, err.id_json), err.id_json);
      FUZZ_CHECK(protocol::BridgeErrorCodeName(err.code) != nullptr);
    }
  }
  return 0;
}
