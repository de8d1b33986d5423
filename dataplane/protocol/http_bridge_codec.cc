#include "dataplane/protocol/http_bridge_codec.h"

#include "common/text/base64.h"
#include "common/text/token.h"
#include "common/text/utf8.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "dataplane/protocol/encoding.h"
#include "common/text/ascii.h"

namespace wsgate::dataplane::protocol {
namespace {

// ordered_json keeps the client's key order, so query parameters go out in the order written.
using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) {
  // Header values from an upstream may hold non-UTF-8 bytes: replace them rather than throw.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

BridgeError Error(BridgeErrorCode code, std::string message,
                  const std::optional<std::string>& id = std::nullopt) {
  return BridgeError{code, std::move(message), id};
}

// Framing and routing are the gateway's business: a client-chosen Host would let it reach another
// virtual host behind an allowed address, and Content-Length / Transfer-Encoding would let it
// desynchronise a kept-alive connection.
bool IsReservedHeader(std::string_view lower) {
  static constexpr std::string_view kReserved[] = {
      "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
      "te",   "trailer",        "proxy-connection",  "expect"};
  for (std::string_view r : kReserved) {
    if (lower == r) return true;
  }
  return false;
}

std::optional<HttpMethod> MethodFromName(std::string_view upper) {
  if (upper == "GET") return HttpMethod::kGet;
  if (upper == "POST") return HttpMethod::kPost;
  if (upper == "PUT") return HttpMethod::kPut;
  if (upper == "DELETE") return HttpMethod::kDelete;
  if (upper == "PATCH") return HttpMethod::kPatch;
  if (upper == "HEAD") return HttpMethod::kHead;
  return std::nullopt;
}

// Query value for one scalar: strings as they are, numbers and booleans as their JSON text.
std::string ScalarText(const Json& v) { return v.is_string() ? v.get<std::string>() : Dump(v); }

void AppendParam(std::string& query, std::string_view key, const Json& value) {
  if (value.is_null()) return;  // as Python requests does with None
  if (value.is_array()) {
    for (const Json& item : value) {
      if (item.is_null()) continue;
      AppendParam(query, key, item.is_structured() ? Json(Dump(item)) : item);
    }
    return;
  }
  if (!query.empty()) query.push_back('&');
  query += text::Cat(PercentEncodeComponent(key), "=",
                     PercentEncodeComponent(value.is_object() ? Dump(value) : ScalarText(value)));
}

std::string AppendQuery(std::string_view url, std::string_view params) {
  url = url.substr(0, url.find('#'));
  if (params.empty()) return std::string(url);
  size_t q = url.find('?');
  if (q == std::string_view::npos) return text::Cat(url, "?", params);
  if (url.back() == '?' || url.back() == '&') return text::Cat(url, params);
  return text::Cat(url, "&", params);
}

// A field that must be a non-empty string. Absent, null and "" are all "missing", as in the seed
// (`if not url`).
std::variant<std::string, BridgeError> RequiredString(const Json& msg, const char* field,
                                                      const std::optional<std::string>& id) {
  auto it = msg.find(field);
  if (it == msg.end() || it->is_null()) {
    return Error(BridgeErrorCode::kMissingField, text::Cat("missing field: ", field), id);
  }
  if (!it->is_string()) {
    return Error(BridgeErrorCode::kInvalidFormat, text::Cat(field, " must be a string"), id);
  }
  std::string value = it->get<std::string>();
  if (value.empty()) {
    return Error(BridgeErrorCode::kMissingField, text::Cat("missing field: ", field), id);
  }
  return value;
}

std::string LowerMediaType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  return text::Lower(text::StripSpace(media));
}

bool IsJsonType(std::string_view media) {
  return media == "application/json" || media == "text/json" || text::EndsWith(media, "+json");
}

bool IsTextualType(std::string_view media) {
  return media.empty() || text::StartsWith(media, "text/") || IsJsonType(media) ||
         text::EndsWith(media, "+xml") || media == "application/xml" ||
         media == "application/javascript" || media == "application/ecmascript" ||
         media == "application/x-www-form-urlencoded";
}

}  // namespace

const char* BridgeErrorCodeName(BridgeErrorCode code) {
  switch (code) {
    case BridgeErrorCode::kInvalidFormat:
      return "INVALID_FORMAT";
    case BridgeErrorCode::kMissingField:
      return "MISSING_FIELD";
    case BridgeErrorCode::kUnsupportedMethod:
      return "UNSUPPORTED_METHOD";
    case BridgeErrorCode::kTargetNotAllowed:
      return "TARGET_NOT_ALLOWED";
    case BridgeErrorCode::kUpstreamTimeout:
      return "UPSTREAM_TIMEOUT";
    case BridgeErrorCode::kUpstreamUnreachable:
      return "UPSTREAM_UNREACHABLE";
    case BridgeErrorCode::kResponseTooLarge:
      return "RESPONSE_TOO_LARGE";
    case BridgeErrorCode::kTooManyInFlight:
      return "TOO_MANY_IN_FLIGHT";
    case BridgeErrorCode::kRequestTooLarge:
      return "REQUEST_TOO_LARGE";
  }
  return "UNKNOWN";
}

const char* HttpMethodName(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kPost:
      return "POST";
    case HttpMethod::kPut:
      return "PUT";
    case HttpMethod::kDelete:
      return "DELETE";
    case HttpMethod::kPatch:
      return "PATCH";
    case HttpMethod::kHead:
      return "HEAD";
  }
  return "GET";
}

std::variant<BridgeRequest, BridgeError> ParseBridgeRequest(std::string_view message,
                                                            const BridgeParseLimits& limits) {
  if (JsonNestingExceeds(message, limits.max_depth)) {
    return Error(BridgeErrorCode::kInvalidFormat, "message is nested too deeply");
  }
  Json msg = Json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded())
    return Error(BridgeErrorCode::kInvalidFormat, "message is not valid JSON");
  if (!msg.is_object()) {
    return Error(BridgeErrorCode::kInvalidFormat, "message is not a JSON object");
  }

  BridgeRequest req;
  // The id first, so that every later error can carry it.
  if (auto it = msg.find("id"); it != msg.end() && !it->is_null()) {
    if (!it->is_string() && !it->is_number()) {
      return Error(BridgeErrorCode::kInvalidFormat, "id must be a string or a number");
    }
    req.id_json = Dump(*it);
  }
  const std::optional<std::string>& id = req.id_json;

  auto url = RequiredString(msg, "url", id);
  if (auto* e = std::get_if<BridgeError>(&url)) return std::move(*e);
  auto method_name = RequiredString(msg, "method", id);
  if (auto* e = std::get_if<BridgeError>(&method_name)) return std::move(*e);
  std::string upper = text::Upper(std::get<std::string>(method_name));
  std::optional<HttpMethod> method = MethodFromName(upper);
  if (!method) {
    // Printed through Dump so that odd bytes in the name cannot break the answer.
    return Error(BridgeErrorCode::kUnsupportedMethod,
                 text::Cat("unsupported method ", Dump(Json(upper.substr(0, 32))),
                           " (GET, POST, PUT, DELETE, PATCH, HEAD)"),
                 id);
  }
  req.method = *method;

  if (auto it = msg.find("headers"); it != msg.end() && !it->is_null()) {
    if (!it->is_object()) {
      return Error(BridgeErrorCode::kInvalidFormat, "headers must be an object", id);
    }
    for (const auto& [name, value] : it->items()) {
      if (name.empty() || name.size() > 256) {
        return Error(BridgeErrorCode::kInvalidFormat, "invalid header name", id);
      }
      for (unsigned char c : name) {
        if (!wsgate::text::IsTokenChar(c)) {
          return Error(BridgeErrorCode::kInvalidFormat, "invalid header name", id);
        }
      }
      std::string lower = text::Lower(name);
      if (IsReservedHeader(lower)) {
        return Error(BridgeErrorCode::kInvalidFormat,
                     text::Cat("header '", name, "' is set by the gateway"), id);
      }
      if (!value.is_string() && !value.is_number() && !value.is_boolean()) {
        return Error(BridgeErrorCode::kInvalidFormat,
                     text::Cat("header '", name, "' must be a string"), id);
      }
      std::string text = ScalarText(value);
      for (unsigned char c : text) {
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return Error(BridgeErrorCode::kInvalidFormat,
                       text::Cat("header '", name, "' holds a control character"), id);
        }
      }
      if (lower == "content-type") req.has_content_type = true;
      req.headers.emplace_back(name, std::move(text));
    }
  }

  if (auto it = msg.find("timeout_ms"); it != msg.end() && !it->is_null()) {
    uint64_t ms = 0;
    if (it->is_number_unsigned()) {
      ms = it->get<uint64_t>();
    } else if (it->is_number_integer() && it->get<int64_t>() > 0) {
      ms = static_cast<uint64_t>(it->get<int64_t>());
    }
    if (ms == 0 || ms > std::numeric_limits<uint32_t>::max()) {
      return Error(BridgeErrorCode::kInvalidFormat, "timeout_ms must be a positive integer", id);
    }
    req.timeout_ms = static_cast<uint32_t>(ms);
  }

  auto data = msg.find("data");
  bool has_data = data != msg.end() && !data->is_null();
  std::string url_text = std::get<std::string>(url);
  switch (req.method) {
    case HttpMethod::kPost:
    case HttpMethod::kPut:
      // The seed: "required for POST/PUT requests".
      if (!has_data) return Error(BridgeErrorCode::kMissingField, "missing field: data", id);
      [[fallthrough]];
    case HttpMethod::kPatch:
      if (has_data) {
        req.body = Dump(*data);
        req.has_body = true;
      }
      req.url = AppendQuery(url_text, "");
      break;
    case HttpMethod::kGet:
    case HttpMethod::kHead:
    case HttpMethod::kDelete: {
      std::string params;
      if (has_data) {
        if (!data->is_object()) {
          return Error(BridgeErrorCode::kInvalidFormat,
                       text::Cat("data must be an object for ", upper, " (query parameters)"), id);
        }
        for (const auto& [key, value] : data->items()) AppendParam(params, key, value);
      }
      req.url = AppendQuery(url_text, params);
      break;
    }
  }
  return req;
}

std::string BuildBridgeResponse(const BridgeHttpResponse& response,
                                const std::optional<std::string>& id_json) {
  Json out = Json::object();
  out["status_code"] = response.status_code;
  Json headers = Json::object();
  // Lowercase name -> the spelling first seen, to join repeated headers under one key.
  std::vector<std::pair<std::string, std::string>> seen;
  std::string content_type;
  bool has_content_type = false;
  for (const auto& [name, value] : response.headers) {
    std::string lower = text::Lower(name);
    if (lower == "content-type" && !has_content_type) {
      content_type = value;
      has_content_type = true;
    }
    auto it =
        std::find_if(seen.begin(), seen.end(), [&](const auto& p) { return p.first == lower; });
    if (it == seen.end()) {
      seen.emplace_back(lower, name);
      headers[name] = value;
    } else {
      std::string& joined = headers[it->second].get_ref<std::string&>();
      joined += text::Cat(", ", value);
    }
  }
  out["headers"] = std::move(headers);

  const std::string& body = response.body;
  std::string media = LowerMediaType(content_type);
  bool done = false;
  if (response.head_request || body.empty()) {
    out["content"] = "";
    done = true;
  }
  if (!done && IsJsonType(media) && !JsonNestingExceeds(body, kMaxJsonDepth)) {
    Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) {
      out["content"] = std::move(parsed);
      done = true;
    }
  }
  if (!done && IsTextualType(media) && wsgate::text::IsValidUtf8(body)) {
    out["content"] = body;
    done = true;
  }
  if (!done) {
    out["content"] = wsgate::text::Base64Encode(body);
    out["content_encoding"] = "base64";
  }
  if (id_json) out["id"] = Json::parse(*id_json, nullptr, false);
  return Dump(out);
}

std::string BuildBridgeError(BridgeErrorCode code, std::string_view message,
                             const std::optional<std::string>& id_json) {
  Json out = Json::object();
  out["error"] = message;
  out["code"] = BridgeErrorCodeName(code);
  if (id_json) out["id"] = Json::parse(*id_json, nullptr, false);
  return Dump(out);
}

}  // namespace wsgate::dataplane::protocol
