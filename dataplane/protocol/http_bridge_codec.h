// The HTTP bridge message formats (seed 000/001): a client message
// {"url","method","data","headers","id","timeout_ms"} in, {"status_code","headers","content"} or
// {"error","code"} out, both with the request's "id" when it had one.
//
// Pure functions of their input, no I/O: the bridge route kind calls them on its worker thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace wsgate::dataplane::protocol {

// The "code" of an error answer. The names (BridgeErrorCodeName) are the wire contract.
enum class BridgeErrorCode {
  kInvalidFormat,        // not JSON, not an object, a field of the wrong type
  kMissingField,         // a required field is absent (the message names it)
  kUnsupportedMethod,    // not GET, POST, PUT, DELETE, PATCH or HEAD
  kTargetNotAllowed,     // refused by the route's allow-list or address ranges
  kUpstreamTimeout,      // no complete answer within the request's timeout
  kUpstreamUnreachable,  // resolve, connect, TLS or transport failure
  kResponseTooLarge,     // the upstream answer is above the route's response cap
  kTooManyInFlight,      // the connection already has the route's maximum in flight
  kRequestTooLarge,      // beyond the list: the request body is above the route's cap
};
const char* BridgeErrorCodeName(BridgeErrorCode code);

enum class HttpMethod { kGet, kPost, kPut, kDelete, kPatch, kHead };
const char* HttpMethodName(HttpMethod method);

struct BridgeRequest {
  // The client's URL with `data` appended as query parameters for GET/HEAD/DELETE (percent-encoded,
  // after any query already there) and the fragment dropped. Not yet checked against any policy.
  std::string url;
  HttpMethod method = HttpMethod::kGet;
  // JSON text of `data` for POST/PUT/PATCH; empty otherwise.
  std::string body;
  bool has_body = false;
  // The client's request headers, in its order. Names are validated tokens, values contain no
  // CR/LF/NUL; framing and routing headers (Host, Content-Length, ...) are refused, not dropped.
  std::vector<std::pair<std::string, std::string>> headers;
  // Whether `headers` already names a Content-Type (otherwise a body is sent as application/json).
  bool has_content_type = false;
  // Canonical JSON text of `id` (a string or a number), echoed back in the answer. Integers come
  // back exactly; other numbers as the nearest double.
  std::optional<std::string> id_json;
  // The client's timeout_ms (a positive integer); the route caps it.
  std::optional<uint32_t> timeout_ms;
};

struct BridgeError {
  BridgeErrorCode code;
  std::string message;
  // The request's id when it could be read, so the client can match the answer.
  std::optional<std::string> id_json;
};

struct BridgeParseLimits {
  // Nesting limit for the whole message (serialising deep JSON recurses).
  size_t max_depth = 64;
};

// Parses one client text message. Never throws; every bad input is a BridgeError to answer with.
std::variant<BridgeRequest, BridgeError> ParseBridgeRequest(std::string_view message,
                                                            const BridgeParseLimits& limits = {});

// What came back from the upstream.
struct BridgeHttpResponse {
  int status_code = 0;
  // In the order received. Repeated names are joined with ", " in the answer (as Python requests
  // does), keeping the first spelling of the name.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // True for a HEAD request: the answer's content is "" whatever the headers say.
  bool head_request = false;
};

// {"status_code": .., "headers": {..}, "content": ..[, "content_encoding": "base64"][, "id": ..]}.
// content is the parsed body when Content-Type says JSON (application/json, text/json,
// application/*+json) and it parses (else the text); text when the body is UTF-8 and the type is
// textual or absent; base64 with content_encoding "base64" otherwise.
std::string BuildBridgeResponse(const BridgeHttpResponse& response,
                                const std::optional<std::string>& id_json);

// {"error": message, "code": NAME[, "id": ..]}.
std::string BuildBridgeError(BridgeErrorCode code, std::string_view message,
                             const std::optional<std::string>& id_json);
inline std::string BuildBridgeError(const BridgeError& error) {
  return BuildBridgeError(error.code, error.message, error.id_json);
}

}  // namespace wsgate::dataplane::protocol
